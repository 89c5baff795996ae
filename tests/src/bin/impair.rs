//! `joyride-impair`: a layer-2 forwarder between two Linux interfaces that
//! impairs the frames it carries the way `tc qdisc netem` would (delay,
//! jitter, rate, loss, reordering, duplication, corruption), for kernels
//! without `sch_netem`.
//!
//! One `AF_PACKET` socket per interface; every frame received on one is
//! offered to that direction's [`Impairer`] (the simulator's decisions, on
//! the real clock) and sent on the other when due. One thread: `ppoll` on
//! both sockets and a signalfd, with a timeout until the next frame is due.
//!
//! Not for: routing, bridging more than two ports, or anything about
//! protocols (frames are opaque bytes).
#![deny(unsafe_code)]

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use clap::Parser;
use joyride_netstack::sim::{BurstLoss, DelayLine, ImpairStats, Impairer, LinkConfig, SimRng};
use joyride_netstack::time::{Clock, Instant, SystemClock};
use nix::poll::{PollFd, PollFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;

/// Frames per `recvmmsg`/`sendmmsg`.
const BATCH: usize = 64;
/// Receive batches per socket per wakeup, so one busy direction cannot
/// starve the other's transmissions.
const RX_ROUNDS: usize = 8;

const AFTER_HELP: &str = "\
Both directions get the same impairments, each its own random stream.
Durations take ns, us, ms or s; rates bit, kbit, mbit, gbit (bits/s) or
bps, kbps, mbps, gbps (bytes/s); probabilities are percentages (2% or 2).

The kernels on both sides must send whole, checksummed frames no larger
than the MTU, so turn their offloads off on the interfaces facing the
forwarder (and GRO on the forwarder's own two):

    ethtool -K IF tx off tso off gso off gro off

Otherwise TSO/GSO/GRO frames larger than the MTU arrive (dropped here as
`truncated`) and checksum offload leaves partial checksums that the far
side rejects.

Counters per direction are printed to stderr on SIGINT or SIGTERM.";

/// Bridges two interfaces at layer 2, impairing frames like netem.
#[derive(Debug, Parser)]
#[command(name = "joyride-impair", version, after_help = AFTER_HELP)]
struct Args {
    /// First interface.
    #[arg(long)]
    a: String,
    /// Second interface.
    #[arg(long)]
    b: String,
    /// One-way delay.
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    delay: Duration,
    /// Extra delay, uniform in [0, JITTER] (reorders frames closer than it).
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    jitter: Duration,
    /// Bandwidth per direction (frames queue behind each other).
    #[arg(long, value_parser = parse_rate)]
    rate: Option<u64>,
    /// Frames that may wait for the rate limit; more are dropped.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Probability a frame is lost.
    #[arg(long, value_parser = parse_percent, default_value = "0")]
    loss: f64,
    /// Bursty loss (Gilbert): P% chance to enter a loss burst per frame,
    /// R% chance to leave it, as `P,R` (netem's `loss gemodel P R`).
    #[arg(long, value_parser = parse_gemodel, value_name = "P,R")]
    loss_burst: Option<BurstLoss>,
    /// Probability a frame is held back by --reorder-delay.
    #[arg(long, value_parser = parse_percent, default_value = "0")]
    reorder: f64,
    /// Extra delay of a reordered frame.
    #[arg(long, value_parser = parse_duration, default_value = "1ms")]
    reorder_delay: Duration,
    /// Probability a frame is sent twice.
    #[arg(long, value_parser = parse_percent, default_value = "0")]
    duplicate: f64,
    /// Probability one random bit of a frame is flipped.
    #[arg(long, value_parser = parse_percent, default_value = "0")]
    corrupt: f64,
    /// Seed of the random choices (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// SO_RCVBUF and SO_SNDBUF of each socket, in bytes.
    #[arg(long, default_value_t = 32 << 20)]
    socket_buffer: usize,
}

fn parse_number(s: &str, units: &[(&str, f64)]) -> Result<f64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("not a number: {s:?}"))?;
    let unit = unit.to_ascii_lowercase();
    let scale = units.iter().find(|(u, _)| *u == unit).map(|&(_, k)| k).ok_or_else(|| {
        let names: Vec<&str> = units.iter().map(|(u, _)| *u).filter(|u| !u.is_empty()).collect();
        format!("unknown unit in {s:?} (use {})", names.join(", "))
    })?;
    Ok(value * scale)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let secs = parse_number(s, &[("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("s", 1.0)])?;
    Ok(Duration::from_secs_f64(secs))
}

fn parse_rate(s: &str) -> Result<u64, String> {
    let units = [
        ("bit", 1.0),
        ("kbit", 1e3),
        ("mbit", 1e6),
        ("gbit", 1e9),
        ("tbit", 1e12),
        ("bps", 8.0),
        ("kbps", 8e3),
        ("mbps", 8e6),
        ("gbps", 8e9),
    ];
    let bps = parse_number(s, &units)?;
    if bps < 1.0 {
        return Err(format!("rate {s:?} is below 1 bit/s"));
    }
    Ok(bps as u64)
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let p = parse_number(s, &[("", 0.01), ("%", 0.01)])?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("{s:?} is not a percentage between 0 and 100"));
    }
    Ok(p)
}

fn parse_gemodel(s: &str) -> Result<BurstLoss, String> {
    let (p, r) = s.split_once(',').ok_or_else(|| format!("{s:?} is not P,R"))?;
    Ok(BurstLoss {
        enter: parse_percent(p)?,
        leave: parse_percent(r)?,
    })
}

impl Args {
    fn link_config(&self) -> LinkConfig {
        LinkConfig {
            latency: self.delay,
            jitter: self.jitter,
            loss: self.loss,
            duplicate: self.duplicate,
            reorder: self.reorder,
            reorder_delay: self.reorder_delay,
            corrupt: self.corrupt,
            rate_bps: self.rate,
            queue_limit: self.limit,
            max_frame: None,
            burst_loss: self.loss_burst,
        }
    }
}

/// Counters the forwarder keeps beside the impairer's.
#[derive(Debug, Default)]
struct Counters {
    /// Frames larger than the receive buffer (offloads left on).
    truncated: u64,
    /// Frames the kernel dropped before we read them (socket buffer full).
    kernel_drops: u64,
    /// Copies `sendmmsg` refused with an error other than "try again".
    send_errors: u64,
    /// Copies sent.
    sent: u64,
}

/// One direction: frames received on `from`, impaired, sent on `to`.
struct Direction {
    name: String,
    from: usize,
    to: usize,
    impairer: Impairer,
    line: DelayLine<Vec<u8>>,
    /// The last send would have blocked: wait for POLLOUT.
    blocked: bool,
    counters: Counters,
}

impl Direction {
    /// Sends every copy due at `now`, in batches, until none is due or the
    /// socket is full.
    fn flush(&mut self, socks: &[sys::PacketSocket], now: Instant) {
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
        loop {
            while batch.len() < BATCH {
                match self.line.pop_due(now) {
                    Some((_, f)) => batch.push(f),
                    None => break,
                }
            }
            if batch.is_empty() {
                self.blocked = false;
                return;
            }
            match socks[self.to].send_batch(&batch) {
                Ok(n) => {
                    self.counters.sent += n as u64;
                    batch.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Put the rest back, first in line (they are the
                    // earliest), and wait until the socket drains.
                    for f in batch.drain(..) {
                        self.line.push(Instant::ZERO, f);
                    }
                    self.blocked = true;
                    return;
                }
                Err(_) => {
                    // One frame the device refuses (e.g. larger than its
                    // MTU): drop it and go on.
                    self.counters.send_errors += 1;
                    batch.remove(0);
                }
            }
        }
    }

    fn report(&self) -> String {
        let ImpairStats {
            frames,
            delivered: _,
            bytes_delivered,
            lost,
            duplicated,
            corrupted,
            reordered,
            queue_dropped,
            oversize: _,
        } = *self.impairer.stats();
        let c = &self.counters;
        format!(
            "joyride-impair: {}: received={frames} forwarded={} bytes={bytes_delivered} lost={lost} \
             duplicated={duplicated} corrupted={corrupted} reordered={reordered} queue_drops={queue_dropped} \
             truncated={} kernel_drops={} send_errors={} pending={}",
            self.name,
            c.sent,
            c.truncated,
            c.kernel_drops,
            c.send_errors,
            self.line.len()
        )
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.link_config();
    let seed = args.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        t.as_nanos() as u64 ^ u64::from(std::process::id())
    });
    let names = [args.a.as_str(), args.b.as_str()];
    let frame_len = names
        .iter()
        .map(|n| sys::mtu(n).map(|m| m + 18))
        .collect::<io::Result<Vec<usize>>>()?
        .into_iter()
        .max()
        .unwrap_or(1518);
    let socks = names
        .iter()
        .map(|n| sys::PacketSocket::open(n, args.socket_buffer))
        .collect::<io::Result<Vec<_>>>()?;
    // Timer slack of 1 us: delays are honoured to the microsecond, not to
    // the default 50 us.
    let _ = nix::sys::prctl::set_timerslack(1_000);
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    signals.thread_block()?;
    let sigfd = SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;

    let mut dirs: Vec<Direction> = [(0, 1), (1, 0)]
        .into_iter()
        .map(|(from, to)| Direction {
            name: format!("{} -> {}", names[from], names[to]),
            from,
            to,
            impairer: Impairer::new(config, SimRng::derive(seed, from as u64)),
            line: DelayLine::new(),
            blocked: false,
            counters: Counters::default(),
        })
        .collect();
    eprintln!(
        "joyride-impair: forwarding {} <-> {} (seed {seed}, frames up to {frame_len} bytes)",
        names[0], names[1]
    );

    let clock = SystemClock::new();
    let mut rx = sys::RecvBatch::new(BATCH, frame_len);
    loop {
        let now = clock.now();
        for d in &mut dirs {
            if !d.blocked {
                d.flush(&socks, now);
            }
        }
        let timeout = dirs
            .iter()
            .filter(|d| !d.blocked)
            .filter_map(|d| d.line.next_due())
            .min()
            .map(|t| TimeSpec::from_duration(t.saturating_duration_since(clock.now())));
        let mut fds: Vec<PollFd> = socks
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut ev = PollFlags::POLLIN;
                if dirs.iter().any(|d| d.to == i && d.blocked) {
                    ev |= PollFlags::POLLOUT;
                }
                PollFd::new(s.as_fd(), ev)
            })
            .collect();
        fds.push(PollFd::new(sigfd.as_fd(), PollFlags::POLLIN));
        match nix::poll::ppoll(&mut fds, timeout, None) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<PollFlags> = fds.iter().map(|f| f.revents().unwrap_or(PollFlags::empty())).collect();
        if ready[2].contains(PollFlags::POLLIN) {
            break;
        }
        for d in &mut dirs {
            if ready[d.to].contains(PollFlags::POLLOUT) {
                d.blocked = false;
            }
        }
        for d in &mut dirs {
            if !ready[d.from].intersects(PollFlags::POLLIN | PollFlags::POLLERR) {
                continue;
            }
            for _ in 0..RX_ROUNDS {
                let n = match rx.recv(&socks[d.from]) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(anyhow::anyhow!("receiving on {}: {e}", names[d.from])),
                };
                let now = clock.now();
                for i in 0..n {
                    let Some(frame) = rx.frame(i) else {
                        d.counters.truncated += 1;
                        continue;
                    };
                    for copy in d.impairer.impair(frame.to_vec(), now) {
                        d.line.push(copy.at, copy.frame);
                    }
                }
                if n < BATCH {
                    break;
                }
            }
        }
    }
    for d in &mut dirs {
        d.counters.kernel_drops = socks[d.from].drops().unwrap_or(0);
        eprintln!("{}", d.report());
    }
    if dirs.iter().any(|d| d.counters.truncated > 0) {
        eprintln!("joyride-impair: frames larger than the MTU arrived: turn offloads off (see --help)");
    }
    Ok(())
}

/// The system calls: `AF_PACKET` sockets, `recvmmsg`, `sendmmsg`.
#[allow(unsafe_code)]
mod sys {
    use std::ffi::CString;
    use std::io;
    use std::mem::{size_of, zeroed};
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

    /// The MTU of interface `name`.
    pub fn mtu(name: &str) -> io::Result<usize> {
        let text = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
            .map_err(|e| io::Error::new(e.kind(), format!("interface {name}: {e}")))?;
        text.trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("MTU of {name}: {text:?}")))
    }

    /// A raw packet socket bound to one interface, seeing every frame it
    /// receives (promiscuous) but none it sends.
    pub struct PacketSocket {
        fd: OwnedFd,
    }

    impl AsFd for PacketSocket {
        fn as_fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }
    }

    fn check(ret: libc::c_int, what: &str) -> io::Result<libc::c_int> {
        if ret < 0 {
            let e = io::Error::last_os_error();
            Err(io::Error::new(e.kind(), format!("{what}: {e}")))
        } else {
            Ok(ret)
        }
    }

    fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T, what: &str) -> io::Result<()> {
        // SAFETY: `value` points to a live `T` of the length passed, and the
        // kernel only reads it.
        let ret = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast(),
                size_of::<T>() as libc::socklen_t,
            )
        };
        check(ret, what).map(drop)
    }

    impl PacketSocket {
        /// Opens a non-blocking packet socket on `name` with `buffer` bytes
        /// of socket buffer each way.
        pub fn open(name: &str, buffer: usize) -> io::Result<PacketSocket> {
            let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
            // SAFETY: `cname` is a NUL-terminated string that outlives the call.
            let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
            if ifindex == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no interface {name}: {}", io::Error::last_os_error()),
                ));
            }
            // Protocol 0: no frame is queued before bind() picks the interface.
            // SAFETY: plain system call with constant arguments.
            let raw = unsafe {
                libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    0,
                )
            };
            check(raw, "socket(AF_PACKET)")?;
            // SAFETY: `raw` is a fresh descriptor nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let one: libc::c_int = 1;
            setsockopt(
                &fd,
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                &one,
                "PACKET_IGNORE_OUTGOING",
            )?;
            let size = libc::c_int::try_from(buffer).unwrap_or(libc::c_int::MAX);
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &size, "SO_RCVBUFFORCE")?;
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &size, "SO_SNDBUFFORCE")?;
            // Straight to the driver: no qdisc between us and the wire.
            setsockopt(
                &fd,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &one,
                "PACKET_QDISC_BYPASS",
            )?;
            // SAFETY: all-zero is a valid `sockaddr_ll`.
            let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: `sll` is a valid `sockaddr_ll` of the length passed.
            let ret = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            check(ret, "bind(AF_PACKET)")?;
            // SAFETY: all-zero is a valid `packet_mreq`.
            let mut mreq: libc::packet_mreq = unsafe { zeroed() };
            mreq.mr_ifindex = ifindex as i32;
            mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
            setsockopt(
                &fd,
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq,
                "PACKET_ADD_MEMBERSHIP",
            )?;
            let s = PacketSocket { fd };
            // Reset the counters: drops before now are not ours.
            s.drops()?;
            Ok(s)
        }

        /// Sends the frames in one `sendmmsg`: how many went, or an error if
        /// the first did not.
        pub fn send_batch(&self, frames: &[Vec<u8>]) -> io::Result<usize> {
            let mut iov: Vec<libc::iovec> = frames
                .iter()
                .map(|f| libc::iovec {
                    iov_base: f.as_ptr() as *mut libc::c_void,
                    iov_len: f.len(),
                })
                .collect();
            let mut msgs = headers(&mut iov);
            // SAFETY: every header points at one iovec in `iov`, which points
            // into a frame of `frames`; all outlive the call and the kernel
            // only reads the frames.
            let n = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    msgs.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            check(n, "sendmmsg").map(|n| n as usize)
        }

        /// Frames the kernel dropped for want of buffer space since the last
        /// call.
        pub fn drops(&self) -> io::Result<u64> {
            // SAFETY: all-zero is a valid `tpacket_stats`.
            let mut st: libc::tpacket_stats = unsafe { zeroed() };
            let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
            // SAFETY: `st` and `len` are live and describe a buffer of `len`
            // bytes that the kernel fills.
            let ret = unsafe {
                libc::getsockopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_STATISTICS,
                    (&mut st as *mut libc::tpacket_stats).cast(),
                    &mut len,
                )
            };
            check(ret, "PACKET_STATISTICS")?;
            Ok(u64::from(st.tp_drops))
        }
    }

    /// One message header per iovec, no address, no control data.
    fn headers(iov: &mut [libc::iovec]) -> Vec<libc::mmsghdr> {
        iov.iter_mut()
            .map(|v| {
                // SAFETY: all-zero is a valid `mmsghdr` (no name, no control
                // data).
                let mut m: libc::mmsghdr = unsafe { zeroed() };
                m.msg_hdr.msg_iov = v;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect()
    }

    /// Buffers for one `recvmmsg`.
    pub struct RecvBatch {
        bufs: Vec<Vec<u8>>,
        lens: Vec<usize>,
        truncated: Vec<bool>,
    }

    impl RecvBatch {
        /// Room for `n` frames of up to `frame_len` bytes.
        pub fn new(n: usize, frame_len: usize) -> RecvBatch {
            RecvBatch {
                bufs: vec![vec![0; frame_len]; n],
                lens: vec![0; n],
                truncated: vec![false; n],
            }
        }

        /// Receives up to a batch of frames without blocking: how many.
        pub fn recv(&mut self, sock: &PacketSocket) -> io::Result<usize> {
            let mut iov: Vec<libc::iovec> = self
                .bufs
                .iter_mut()
                .map(|b| libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                })
                .collect();
            let mut msgs = headers(&mut iov);
            // SAFETY: every header points at one iovec in `iov`, which points
            // at a distinct buffer of `self.bufs` of the length given; all
            // outlive the call and nothing else touches them during it.
            let n = unsafe {
                libc::recvmmsg(
                    sock.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    msgs.len() as libc::c_uint,
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    std::ptr::null_mut(),
                )
            };
            let n = check(n, "recvmmsg")? as usize;
            for (i, m) in msgs[..n].iter().enumerate() {
                // With MSG_TRUNC the length is the frame's, even if longer
                // than the buffer.
                self.lens[i] = m.msg_len as usize;
                self.truncated[i] = m.msg_len as usize > self.bufs[i].len();
            }
            Ok(n)
        }

        /// Frame `i` of the last batch, or `None` if it was truncated.
        pub fn frame(&self, i: usize) -> Option<&[u8]> {
            (!self.truncated[i]).then(|| &self.bufs[i][..self.lens[i]])
        }
    }
}
