//! Unit tests with real socketpairs: the "target end" is the fd
//! `Bridge::new` returns, used directly, and `dup`s of it play the
//! duplicates the supervisor gets with `pidfd_getfd`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread;

use rustix::event::epoll;
use rustix::fs::{fcntl_getfd, FdFlags};
use rustix::io::dup;

use super::*;

/// The readiness the target would see on its end, checked to be the same
/// with `poll` and with a level-triggered `epoll`.
#[track_caller]
fn target_sees(fd: BorrowedFd<'_>) -> PollFlags {
    let p = poll_now(fd, PollFlags::IN | PollFlags::OUT | PollFlags::RDHUP).unwrap();
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    epoll::add(
        &ep,
        fd,
        epoll::EventData::new_u64(1),
        epoll::EventFlags::IN | epoll::EventFlags::OUT | epoll::EventFlags::RDHUP,
    )
    .unwrap();
    let mut events = epoll::EventVec::with_capacity(4);
    epoll::wait(&ep, &mut events, 0).unwrap();
    let e = events
        .iter()
        .next()
        .map(|e| {
            let f = e.flags;
            f.bits()
        })
        .unwrap_or(0);
    let mask = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
    assert_eq!(u32::from(p.bits()) & mask, e & mask, "poll {p:?} vs epoll {e:#x}");
    p
}

const IN: PollFlags = PollFlags::IN;
const OUT: PollFlags = PollFlags::OUT;
const RDHUP: PollFlags = PollFlags::RDHUP;
const HUP: PollFlags = PollFlags::HUP;
const ERR: PollFlags = PollFlags::ERR;

fn would_block<T: std::fmt::Debug>(r: io::Result<T>) -> bool {
    matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

fn addr(n: u16) -> SocketAddr {
    if n.is_multiple_of(2) {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, n as u8), 1000 + n))
    } else {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n),
            1000 + n,
            0,
            0,
        ))
    }
}

/// What datagram `n` is pushed with: source `addr(n)`, the rest derived
/// from `n` too.
fn meta(n: u16) -> DatagramMeta {
    let from = addr(n);
    DatagramMeta {
        from,
        to: match from {
            SocketAddr::V4(_) => Ipv4Addr::new(192, 0, 2, 200).into(),
            SocketAddr::V6(_) => Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0xc8).into(),
        },
        hop_limit: n as u8,
        traffic_class: !(n as u8),
    }
}

fn sndbuf(fd: impl AsFd) -> usize {
    sockopt::get_socket_send_buffer_size(fd).unwrap()
}

fn outq(fd: impl AsFd) -> usize {
    sys::queue_ioctl(fd.as_fd(), QueueIoctl::Outq).unwrap()
}

fn inq(fd: impl AsFd) -> usize {
    sys::queue_ioctl(fd.as_fd(), QueueIoctl::Inq).unwrap()
}

// ---------------------------------------------------------------- creation

#[test]
fn new_sets_flags_ino_and_buffers() {
    for kind in [Kind::Stream, Kind::Datagram] {
        for nonblocking in [false, true] {
            let (b, t) = Bridge::new(kind, nonblocking).unwrap();
            assert_eq!(b.kind(), kind);
            assert!(fcntl_getfl(b.as_fd()).unwrap().contains(OFlags::NONBLOCK));
            assert_eq!(fcntl_getfl(&t).unwrap().contains(OFlags::NONBLOCK), nonblocking);
            assert!(fcntl_getfd(b.as_fd()).unwrap().contains(FdFlags::CLOEXEC));
            assert!(fcntl_getfd(&t).unwrap().contains(FdFlags::CLOEXEC));
            // A duplicate (what pidfd_getfd gives) has the same inode.
            let d = dup(&t).unwrap();
            assert_eq!(fstat(&d).unwrap().st_ino as u64, b.ino());
            assert_ne!(fstat(b.as_fd()).unwrap().st_ino as u64, b.ino());
            // O_NONBLOCK is in the shared open file: a dup sees it set later.
            set_nonblocking(t.as_fd(), true).unwrap();
            assert!(fcntl_getfl(&d).unwrap().contains(OFlags::NONBLOCK));
        }
    }
    let wmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (b, t) = Bridge::new(Kind::Stream, true).unwrap();
    for got in [sndbuf(b.as_fd()), sndbuf(&t)] {
        // SO_SNDBUFFORCE with CAP_NET_ADMIN, else capped at 2 * wmem_max.
        assert!(
            got == STREAM_BUFFER || got == (2 * wmem_max).min(STREAM_BUFFER),
            "{got}"
        );
    }
    let (b, t) = Bridge::new(Kind::Datagram, true).unwrap();
    assert!(sndbuf(b.as_fd()) >= DATAGRAM_BUFFER && sndbuf(&t) >= DATAGRAM_BUFFER);
}

#[test]
fn wrong_kind_is_invalid_input() {
    let (mut s, st) = Bridge::new(Kind::Stream, true).unwrap();
    let (mut d, dt) = Bridge::new(Kind::Datagram, true).unwrap();
    let inval = |r: io::Result<()>| r.unwrap_err().kind() == io::ErrorKind::InvalidInput;
    assert!(inval(d.read(&mut [0; 4]).map(drop)));
    assert!(inval(d.write(b"x").map(drop)));
    assert!(inval(d.hold_writes(dt.as_fd())));
    assert!(inval(s.push_datagram(b"x", meta(1))));
    assert!(inval(s.pull_datagram(&mut [0; 4]).map(drop)));
    assert!(inval(s.sync_sources(st.as_fd())));
}

#[test]
fn bridge_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Bridge>();
}

// ---------------------------------------------------------------- stream data

#[test]
fn stream_both_ways_and_readiness() {
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    assert_eq!(target_sees(t.as_fd()), OUT);
    assert!(would_block(b.read(&mut [0; 8])));
    assert_eq!(b.write(b"hello").unwrap(), 5);
    assert_eq!(target_sees(t.as_fd()), IN | OUT);
    let mut buf = [0u8; 16];
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"hello");
    assert_eq!(target_sees(t.as_fd()), OUT);
    rustix::io::write(&t, b"world").unwrap();
    assert_eq!(b.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"world");
    assert_eq!(b.read(&mut []).unwrap(), 0);

    // Vectored both ways.
    let n = b
        .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b""), IoSlice::new(b"cde")])
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"abcde");
    rustix::io::write(&t, b"0123456789").unwrap();
    let (mut x, mut y) = ([0u8; 4], [0u8; 16]);
    let n = b
        .read_vectored(&mut [IoSliceMut::new(&mut x), IoSliceMut::new(&mut y)])
        .unwrap();
    assert_eq!(n, 10);
    assert_eq!(&x, b"0123");
    assert_eq!(&y[..6], b"456789");
}

#[test]
fn unread_by_target_is_truesize_exact_is_bytes() {
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    assert_eq!(b.unread_by_target().unwrap(), 0);
    b.write(&[7u8; 1000]).unwrap();
    // SIOCOUTQ on an AF_UNIX socket is sk_wmem_alloc: truesize, not bytes.
    let est = b.unread_by_target().unwrap();
    eprintln!("1000 bytes unread: SIOCOUTQ {est}");
    assert!(est > 1000, "{est}");
    assert_eq!(b.unread_by_target_exact(t.as_fd()).unwrap(), 1000);
    let mut buf = [0u8; 600];
    rustix::io::read(&t, &mut buf).unwrap();
    assert_eq!(b.unread_by_target_exact(t.as_fd()).unwrap(), 400);
    // A partly read skb still counts whole.
    assert_eq!(b.unread_by_target().unwrap(), est);
    rustix::io::read(&t, &mut buf).unwrap();
    assert_eq!(b.unread_by_target().unwrap(), 0);
}

/// The pair's backpressure: our writes stop with WouldBlock, and the amount
/// in flight is bounded by the *sender's* `sk_sndbuf`, whatever the
/// receiver's `sk_rcvbuf`.
#[test]
fn sender_sndbuf_bounds_data_in_flight() {
    let fill = |from: BorrowedFd<'_>| {
        let mut total = 0;
        loop {
            match send(from, &[1u8; 8192], SendFlags::DONTWAIT) {
                Ok(n) => total += n,
                Err(Errno::AGAIN) => return total,
                Err(e) => panic!("{e}"),
            }
        }
    };
    // Small sender buffer, large receiver buffer: little in flight.
    let (b, t) = Bridge::new(Kind::Stream, true).unwrap();
    sockopt::set_socket_send_buffer_size(&t, 16 * 1024).unwrap(); // sk_sndbuf 32 KiB
    assert_eq!(sndbuf(&t), 32 * 1024);
    // Sends go on while sk_wmem_alloc < sk_sndbuf (sock_alloc_send_pskb):
    // at most one send beyond.
    let small = fill(t.as_fd());
    assert!(small <= 32 * 1024 + 8192, "{small}");
    // Large sender buffer, the smallest receiver buffer: a lot in flight.
    sockopt::set_socket_recv_buffer_size(b.as_fd(), 1).unwrap();
    let (b2, t2) = Bridge::new(Kind::Stream, true).unwrap();
    sockopt::set_socket_recv_buffer_size(b2.as_fd(), 1).unwrap();
    let big = fill(t2.as_fd());
    assert!(big > 400 * 1024, "{big}");
    // Our side: write() reports WouldBlock when full.
    let (mut b3, _t3) = Bridge::new(Kind::Stream, true).unwrap();
    let mut total = 0;
    loop {
        match b3.write(&[0u8; 65536]) {
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(total > 400 * 1024 && total <= STREAM_BUFFER, "{total}");
}

/// `unix_writable`: `(sk_wmem_alloc << 2) <= sk_sndbuf`, where
/// `sk_wmem_alloc` is the refcount (SIOCOUTQ + 1).
#[test]
fn unix_writable_is_a_quarter_of_sndbuf() {
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    sockopt::set_socket_send_buffer_size(&t, 32 * 1024).unwrap();
    let sb = sndbuf(&t);
    loop {
        match send(&t, &[1u8; 1024], SendFlags::DONTWAIT) {
            Ok(_) => {}
            Err(Errno::AGAIN) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let mut seen_writable = false;
    let mut buf = [0u8; 1024];
    loop {
        let wmem = outq(&t) + 1;
        let writable = target_sees(t.as_fd()).contains(OUT);
        assert_eq!(writable, (wmem << 2) <= sb, "wmem {wmem} sndbuf {sb}");
        seen_writable |= writable;
        if would_block(b.read(&mut buf)) {
            break;
        }
    }
    assert!(seen_writable);
}

// ---------------------------------------------------------------- holding writes

#[test]
fn hold_writes_blocks_pollout_until_release() {
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    let before = sndbuf(&t);
    let d = dup(&t).unwrap(); // the supervisor's pidfd_getfd copy
    assert!(!b.is_holding());
    b.hold_writes(d.as_fd()).unwrap();
    assert!(b.is_holding());
    // SO_SNDBUF's minimum, after doubling: SOCK_MIN_SNDBUF.
    assert_eq!(sndbuf(&t), 4608);
    // Cheap: a few KB of filler, which sits in our receive queue.
    let filler = b.hold.as_ref().unwrap().filler;
    assert!(filler > 0 && filler <= 8192, "{filler}");
    eprintln!(
        "filler {filler} bytes, our inq {}, target wmem {}",
        inq(b.as_fd()),
        outq(&t)
    );
    assert_eq!(inq(b.as_fd()), filler);
    // Not writable, from poll and epoll; a write fails with EAGAIN.
    assert_eq!(target_sees(t.as_fd()), PollFlags::empty());
    assert_eq!(send(&t, b"x", SendFlags::DONTWAIT), Err(Errno::AGAIN));
    // Still readable when we write.
    b.write(b"SYN-ACK?").unwrap();
    assert_eq!(target_sees(t.as_fd()), IN);
    let mut buf = [0u8; 64];
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 8);
    // The filler is never read.
    assert!(would_block(b.read(&mut buf)));
    // A second hold is a no-op.
    b.hold_writes(d.as_fd()).unwrap();
    assert_eq!(b.hold.as_ref().unwrap().filler, filler);

    // Edge-triggered EPOLLOUT fires on release.
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    let et = epoll::EventFlags::OUT | epoll::EventFlags::ET;
    epoll::add(&ep, &t, epoll::EventData::new_u64(7), et).unwrap();
    let mut events = epoll::EventVec::with_capacity(4);
    epoll::wait(&ep, &mut events, 0).unwrap();
    assert_eq!(events.len(), 0);
    b.release_writes(d.as_fd()).unwrap();
    drop(d);
    assert!(!b.is_holding());
    epoll::wait(&ep, &mut events, 0).unwrap();
    assert_eq!(events.len(), 1);
    let flags = events.iter().next().unwrap().flags;
    assert!(flags.contains(epoll::EventFlags::OUT));
    assert_eq!(target_sees(t.as_fd()), OUT);
    assert_eq!(sndbuf(&t), before);
    assert_eq!(inq(b.as_fd()), 0);
    // Real data flows, without filler in front.
    rustix::io::write(&t, b"GET /").unwrap();
    assert_eq!(b.read(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"GET /");
    // Release when not holding: nothing.
    b.release_writes(t.as_fd()).unwrap();
}

#[test]
fn hold_writes_keeps_earlier_data_in_order() {
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    rustix::io::write(&t, b"early").unwrap();
    b.hold_writes(t.as_fd()).unwrap();
    let mut buf = [0u8; 3];
    assert_eq!(b.read(&mut buf).unwrap(), 3);
    assert_eq!(&buf, b"ear");
    let mut buf = [0u8; 16];
    assert_eq!(b.read(&mut buf).unwrap(), 2);
    assert_eq!(&buf[..2], b"ly");
    assert!(would_block(b.read(&mut buf)));
    b.release_writes(t.as_fd()).unwrap();
    rustix::io::write(&t, b"late").unwrap();
    assert_eq!(b.read(&mut buf).unwrap(), 4);
    assert_eq!(&buf[..4], b"late");
}

/// A blocking target writer sleeps while held and proceeds at release.
#[test]
fn hold_writes_blocks_a_blocking_writer() {
    let (mut b, t) = Bridge::new(Kind::Stream, false).unwrap();
    b.hold_writes(t.as_fd()).unwrap(); // MSG_DONTWAIT: does not block us
    let t = Arc::new(t);
    let t2 = Arc::clone(&t);
    let writer = thread::spawn(move || rustix::io::write(&*t2, b"blocked").unwrap());
    thread::sleep(std::time::Duration::from_millis(100));
    assert!(!writer.is_finished());
    b.release_writes(t.as_fd()).unwrap();
    assert_eq!(writer.join().unwrap(), 7);
    let mut buf = [0u8; 16];
    let mut fds = [PollFd::new(&b, PollFlags::IN)];
    poll(&mut fds, 1000).unwrap();
    assert_eq!(b.read(&mut buf).unwrap(), 7);
    assert_eq!(&buf[..7], b"blocked");
}

#[test]
fn eof_and_peer_while_holding() {
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    b.hold_writes(t.as_fd()).unwrap();
    assert_eq!(b.peer().unwrap(), Peer::Open);
    shutdown(&t, Shutdown::Write).unwrap();
    assert_eq!(b.read(&mut [0; 8]).unwrap(), 0);
    assert_eq!(b.peer().unwrap(), Peer::WriteShut);
    drop(t);
    assert_eq!(b.peer().unwrap(), Peer::Closed);
}

// ---------------------------------------------------------------- big transfers

fn pattern(seed: u64, i: u64) -> u8 {
    ((i ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

const FNV0: u64 = 0xcbf2_9ce4_8422_2325;

/// 8 MiB each way at once, the target blocking (two threads on its end), us
/// pumping non-blocking from poll; starts with a hold/release so the filler
/// would show up if it ever leaked. Byte-exact: a position-dependent pattern
/// and an FNV checksum on each side; both sides half-close at the end.
#[test]
fn eight_mib_each_way_byte_exact() {
    const SIZE: u64 = 8 << 20;
    let (mut b, t) = Bridge::new(Kind::Stream, false).unwrap();
    b.hold_writes(t.as_fd()).unwrap();
    b.release_writes(t.as_fd()).unwrap();
    let t = Arc::new(t);
    let tw = Arc::clone(&t);
    let writer = thread::spawn(move || {
        let mut sent = 0u64;
        let mut h = FNV0;
        let mut chunk = vec![0u8; 100_000];
        while sent < SIZE {
            let n = (SIZE - sent).min(chunk.len() as u64) as usize;
            for (k, c) in chunk[..n].iter_mut().enumerate() {
                *c = pattern(1, sent + k as u64);
            }
            let w = rustix::io::write(&*tw, &chunk[..n]).unwrap();
            h = fnv(h, &chunk[..w]);
            sent += w as u64;
        }
        shutdown(&*tw, Shutdown::Write).unwrap();
        h
    });
    let tr = Arc::clone(&t);
    let reader = thread::spawn(move || {
        let mut got = 0u64;
        let mut h = FNV0;
        let mut buf = vec![0u8; 77_777];
        loop {
            let n = rustix::io::read(&*tr, &mut buf).unwrap();
            if n == 0 {
                return (got, h);
            }
            for (k, &c) in buf[..n].iter().enumerate() {
                assert_eq!(c, pattern(2, got + k as u64), "target byte {}", got + k as u64);
            }
            h = fnv(h, &buf[..n]);
            got += n as u64;
        }
    });
    let (mut sent, mut got) = (0u64, 0u64);
    let (mut h_sent, mut h_got) = (FNV0, FNV0);
    let mut eof = false;
    let mut out = vec![0u8; 65536];
    let mut inb = vec![0u8; 65536];
    while !eof || sent < SIZE {
        let mut want = PollFlags::empty();
        if !eof {
            want |= PollFlags::IN;
        }
        if sent < SIZE {
            want |= PollFlags::OUT;
        }
        let mut fds = [PollFd::new(&b, want)];
        assert!(poll(&mut fds, 5000).unwrap() > 0, "stalled");
        if sent < SIZE {
            let n = (SIZE - sent).min(out.len() as u64) as usize;
            for (k, c) in out[..n].iter_mut().enumerate() {
                *c = pattern(2, sent + k as u64);
            }
            match b.write(&out[..n]) {
                Ok(w) => {
                    h_sent = fnv(h_sent, &out[..w]);
                    sent += w as u64;
                    if sent == SIZE {
                        b.shut_write().unwrap();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        if !eof {
            match b.read(&mut inb) {
                Ok(0) => eof = true,
                Ok(n) => {
                    for (k, &c) in inb[..n].iter().enumerate() {
                        assert_eq!(c, pattern(1, got + k as u64), "supervisor byte {}", got + k as u64);
                    }
                    h_got = fnv(h_got, &inb[..n]);
                    got += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
    assert_eq!(got, SIZE);
    assert_eq!(writer.join().unwrap(), h_got);
    assert_eq!(reader.join().unwrap(), (SIZE, h_sent));
    // Both halves shut, the target's end still open (sock_diag says so).
    assert_eq!(b.peer().unwrap(), Peer::WriteShut);
    drop(t);
    assert_eq!(b.peer().unwrap(), Peer::Closed);
}

// ---------------------------------------------------------------- closing

#[test]
fn shut_write_target_reads_eof_and_can_still_write() {
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    b.write(b"last").unwrap();
    b.shut_write().unwrap();
    assert_eq!(target_sees(t.as_fd()), IN | OUT | RDHUP);
    let mut buf = [0u8; 16];
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 4);
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 0);
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 0);
    rustix::io::write(&t, b"reply").unwrap();
    assert_eq!(b.read(&mut buf).unwrap(), 5);
    assert_eq!(b.peer().unwrap(), Peer::Open);
    assert_eq!(b.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    // The target's shutdown too: our sk_shutdown is complete, EPOLLHUP as
    // after a close; sock_diag tells them apart.
    shutdown(&t, Shutdown::Write).unwrap();
    assert!(poll_now(b.as_fd(), IN | RDHUP).unwrap().contains(HUP));
    assert_eq!(b.peer().unwrap(), Peer::WriteShut);
    assert_eq!(target_sees(t.as_fd()), IN | OUT | RDHUP | HUP);
    drop(t);
    assert_eq!(b.peer().unwrap(), Peer::Closed);
}

#[test]
fn drop_with_empty_queue_is_eof_and_epipe() {
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    b.write(b"bye").unwrap();
    b.reset();
    assert_eq!(target_sees(t.as_fd()), IN | OUT | RDHUP | HUP);
    let mut buf = [0u8; 16];
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 3);
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 0);
    assert_eq!(send(&t, b"x", SendFlags::NOSIGNAL), Err(Errno::PIPE));
    assert_eq!(sockopt::get_socket_error(&t).unwrap(), Ok(()));
}

#[test]
fn reset_while_holding_is_econnreset() {
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    b.hold_writes(t.as_fd()).unwrap();
    b.write(b"data").unwrap();
    b.reset();
    // Freeing our queue (the filler) gave the target its send space back:
    // EPOLLOUT, as tcp_poll reports after a RST too (SEND_SHUTDOWN).
    assert_eq!(target_sees(t.as_fd()), IN | OUT | RDHUP | HUP | ERR);
    let mut buf = [0u8; 16];
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 4);
    assert_eq!(rustix::io::read(&t, &mut buf), Err(Errno::CONNRESET));
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 0);
    assert_eq!(send(&t, b"x", SendFlags::NOSIGNAL), Err(Errno::PIPE));
}

#[test]
fn reset_with_is_econnreset_and_so_error() {
    for kind in [Kind::Stream, Kind::Datagram] {
        let (b, t) = Bridge::new(kind, true).unwrap();
        let d = dup(&t).unwrap();
        b.reset_with(d.as_fd());
        drop(d);
        assert!(target_sees(t.as_fd()).contains(ERR | HUP), "{kind:?}");
        assert_eq!(sockopt::get_socket_error(&t).unwrap(), Err(Errno::CONNRESET));
        assert!(!target_sees(t.as_fd()).contains(ERR)); // SO_ERROR consumed it
    }
}

// ---------------------------------------------------------------- the peer

#[test]
fn peer_classification_stream() {
    let mut buf = [0u8; 16];
    let our_events = |b: &Bridge| poll_now(b.as_fd(), IN | RDHUP).unwrap();

    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    assert_eq!(b.peer().unwrap(), Peer::Open);
    rustix::io::write(&t, b"req").unwrap();
    shutdown(&t, Shutdown::Write).unwrap();
    assert_eq!(our_events(&b), IN | RDHUP);
    assert_eq!(b.peer().unwrap(), Peer::WriteShut);
    assert_eq!(b.read(&mut buf).unwrap(), 3);
    assert_eq!(b.read(&mut buf).unwrap(), 0);
    b.write(b"resp").unwrap(); // still writable after its SHUT_WR
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 4);
    drop(t);
    assert_eq!(our_events(&b), IN | RDHUP | HUP);
    assert_eq!(b.peer().unwrap(), Peer::Closed);

    // Closed with data it never read: ECONNRESET on our end.
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    b.write(b"unread").unwrap();
    drop(t);
    assert_eq!(our_events(&b), IN | RDHUP | HUP | ERR);
    assert_eq!(b.peer().unwrap(), Peer::ClosedUnread);
    // Reading consumes sk_err (reported as EOF); peer() remembers.
    assert_eq!(b.read(&mut buf).unwrap(), 0);
    assert_eq!(our_events(&b), IN | RDHUP | HUP);
    assert_eq!(b.read(&mut buf).unwrap(), 0);
    assert_eq!(b.peer().unwrap(), Peer::ClosedUnread);

    // Data it wrote before closing is still read first, then EOF.
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    b.write(b"unread").unwrap();
    rustix::io::write(&t, b"last words").unwrap();
    drop(t);
    assert_eq!(b.peer().unwrap(), Peer::ClosedUnread);
    assert_eq!(b.read(&mut buf).unwrap(), 10);
    assert_eq!(b.read(&mut buf).unwrap(), 0);
}

/// `SHUT_RDWR` gives our end `EPOLLHUP` as a close does: it is `WriteShut`
/// while the socket exists; `SHUT_RD` is not visible to poll, only to our
/// writes.
#[test]
fn peer_after_shut_rdwr_and_shut_rd() {
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    b.write(b"read by nobody").unwrap();
    shutdown(&t, Shutdown::ReadWrite).unwrap();
    assert_eq!(poll_now(b.as_fd(), IN | RDHUP).unwrap(), IN | RDHUP | HUP);
    assert_eq!(b.peer().unwrap(), Peer::WriteShut);
    assert_eq!(b.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    drop(t);
    assert_eq!(b.peer().unwrap(), Peer::ClosedUnread);
    let (b, t) = Bridge::new(Kind::Stream, true).unwrap();
    shutdown(&t, Shutdown::ReadWrite).unwrap();
    assert_eq!(b.peer().unwrap(), Peer::WriteShut);
    drop(t);
    assert_eq!(b.peer().unwrap(), Peer::Closed);
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    shutdown(&t, Shutdown::Read).unwrap();
    assert_eq!(b.peer().unwrap(), Peer::Open);
    assert_eq!(b.write(b"x").unwrap_err().kind(), io::ErrorKind::BrokenPipe);
}

/// fork/dup: the socket is released with the last reference to its file.
#[test]
fn closing_one_copy_is_not_closed() {
    let (mut b, t) = Bridge::new(Kind::Stream, true).unwrap();
    let child = dup(&t).unwrap();
    b.write(b"shared").unwrap();
    drop(t);
    assert_eq!(b.peer().unwrap(), Peer::Open);
    let mut buf = [0u8; 16];
    assert_eq!(rustix::io::read(&child, &mut buf).unwrap(), 6);
    drop(child);
    assert_eq!(b.peer().unwrap(), Peer::Closed);
}

// ---------------------------------------------------------------- datagrams

#[test]
fn datagrams_keep_boundaries_and_eof() {
    let (mut b, t) = Bridge::new(Kind::Datagram, true).unwrap();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    assert!(would_block(b.pull_datagram(&mut buf)));
    for m in [&b"abc"[..], b"", b"defgh", b""] {
        rustix::io::write(&t, m).unwrap();
    }
    assert_eq!(b.pull_datagram(&mut buf).unwrap(), Some(3));
    assert_eq!(&buf[..3], b"abc");
    assert_eq!(b.pull_datagram(&mut buf).unwrap(), Some(0));
    assert_eq!(b.pull_datagram(&mut buf).unwrap(), Some(5));
    assert_eq!(&buf[..5], b"defgh");
    shutdown(&t, Shutdown::Write).unwrap();
    // The empty datagram just before EOF is still told apart.
    assert_eq!(b.pull_datagram(&mut buf).unwrap(), Some(0));
    assert_eq!(b.pull_datagram(&mut buf).unwrap(), None);
    assert_eq!(b.pull_datagram(&mut buf).unwrap(), None);
    assert_eq!(b.peer().unwrap(), Peer::WriteShut);

    // Push: the target reads whole datagrams, boundaries kept.
    b.push_datagram(b"one", meta(1)).unwrap();
    b.push_datagram(b"", meta(2)).unwrap();
    b.push_datagram(b"three", meta(3)).unwrap();
    assert_eq!(target_sees(t.as_fd()), IN | OUT);
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 3);
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 0);
    assert_eq!(rustix::io::read(&t, &mut buf[..2]).unwrap(), 2); // rest discarded
    assert_eq!(rustix::io::read(&t, &mut buf), Err(Errno::AGAIN));
    drop(t);
    assert_eq!(b.peer().unwrap(), Peer::Closed);
}

#[test]
fn oversized_datagram_is_emsgsize_and_dropped() {
    let (mut b, t) = Bridge::new(Kind::Datagram, true).unwrap();
    rustix::io::write(&t, &vec![9u8; 70_000]).unwrap();
    rustix::io::write(&t, &vec![8u8; MAX_DATAGRAM]).unwrap();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    assert_eq!(
        b.pull_datagram(&mut buf).unwrap_err().raw_os_error(),
        Some(libc::EMSGSIZE)
    );
    assert_eq!(b.pull_datagram(&mut buf).unwrap(), Some(MAX_DATAGRAM));
    assert!(buf.iter().all(|&x| x == 8));
    // Beyond sk_sndbuf - 32 the target's own send fails.
    let big = vec![0u8; sndbuf(&t)];
    assert_eq!(rustix::io::write(&t, &big), Err(Errno::MSGSIZE));
}

/// `SIOCINQ` on a `SOCK_SEQPACKET` end sums the whole queue.
#[test]
fn siocinq_sums_seqpacket_queue() {
    let (mut b, t) = Bridge::new(Kind::Datagram, true).unwrap();
    for (i, n) in [10usize, 0, 20, 30].into_iter().enumerate() {
        b.push_datagram(&vec![1u8; n], meta(i as u16)).unwrap();
    }
    assert_eq!(inq(&t), 60);
    assert_eq!(b.unread_by_target_exact(t.as_fd()).unwrap(), 60);
    assert_eq!(b.queued_datagrams(), 4);
}

#[test]
fn sources_follow_untrapped_reads() {
    let (mut b, t) = Bridge::new(Kind::Datagram, true).unwrap();
    let d = dup(&t).unwrap();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // A(5, s1) B(0, s2) C(7, s3) D(0, s4) E(0, s5) F(3, s6)
    for (i, n) in [5usize, 0, 7, 0, 0, 3].into_iter().enumerate() {
        b.push_datagram(&vec![i as u8; n], meta(i as u16 + 1)).unwrap();
    }
    b.sync_sources(d.as_fd()).unwrap();
    assert_eq!((b.head_source(), b.queued_datagrams()), (Some(addr(1)), 6));
    // Plain read of A: the bytes say so; B (empty) is at the head.
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 5);
    b.sync_sources(d.as_fd()).unwrap();
    assert_eq!((b.head_source(), b.queued_datagrams()), (Some(addr(2)), 5));
    // Read of B: no bytes change, but the head is now non-empty (peek).
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 0);
    b.sync_sources(d.as_fd()).unwrap();
    assert_eq!((b.head_source(), b.queued_datagrams()), (Some(addr(3)), 4));
    // Reads of C and D: C is counted by bytes; D vs E is the documented
    // ambiguity (a run of empty datagrams at the head): D's entry stays.
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 7);
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 0);
    b.sync_sources(d.as_fd()).unwrap();
    assert_eq!((b.head_source(), b.queued_datagrams()), (Some(addr(4)), 3));
    // Read of E: F is at the head, non-empty: D and E are dropped.
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 0);
    b.sync_sources(d.as_fd()).unwrap();
    assert_eq!((b.head_source(), b.queued_datagrams()), (Some(addr(6)), 1));
    // A datagram pushed meanwhile goes behind.
    b.push_datagram(b"G", meta(7)).unwrap();
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 3);
    b.sync_sources(d.as_fd()).unwrap();
    assert_eq!((b.head_source(), b.queued_datagrams()), (Some(addr(7)), 1));
    assert_eq!(rustix::io::read(&t, &mut buf).unwrap(), 1);
    b.sync_sources(d.as_fd()).unwrap();
    assert_eq!((b.head_source(), b.queued_datagrams()), (None, 0));
    // Trailing empty datagrams are dropped once the queue is empty.
    b.push_datagram(b"", meta(8)).unwrap();
    b.push_datagram(b"", meta(9)).unwrap();
    rustix::io::read(&t, &mut buf).unwrap();
    rustix::io::read(&t, &mut buf).unwrap();
    b.sync_sources(d.as_fd()).unwrap();
    assert_eq!((b.head_source(), b.queued_datagrams()), (None, 0));
}

/// Many datagrams: the pair fills (WouldBlock), the target reads some with
/// plain recv, sync_sources keeps source and content matched throughout.
#[test]
fn datagram_backpressure_and_matching() {
    let (mut b, t) = Bridge::new(Kind::Datagram, true).unwrap();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let (mut next_push, mut next_read) = (0u16, 0u16);
    let mut full_seen = 0;
    while next_read < 3000 {
        loop {
            let len = (next_push as usize * 37) % 1500;
            match b.push_datagram(&vec![next_push as u8; len], meta(next_push)) {
                Ok(()) => next_push += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    full_seen += 1;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(!target_sees(t.as_fd()).contains(OUT) || next_push > next_read);
        // Read a few: every other one "trapped" (sync then check the source).
        for k in 0..7 {
            if k % 2 == 0 {
                b.sync_sources(t.as_fd()).unwrap();
                assert_eq!(b.head_source(), Some(addr(next_read)));
                assert_eq!(b.head_meta(), Some(meta(next_read)));
                assert_eq!(b.queued_datagrams(), usize::from(next_push - next_read));
            }
            let n = rustix::io::read(&t, &mut buf).unwrap();
            assert_eq!(n, (next_read as usize * 37) % 1500);
            assert!(buf[..n].iter().all(|&x| x == next_read as u8));
            next_read += 1;
        }
    }
    assert!(full_seen > 100);
}

#[test]
fn peer_classification_datagram() {
    let (mut b, t) = Bridge::new(Kind::Datagram, true).unwrap();
    assert_eq!(b.peer().unwrap(), Peer::Open);
    b.push_datagram(b"never read", meta(1)).unwrap();
    drop(t);
    assert_eq!(b.peer().unwrap(), Peer::ClosedUnread);
    assert_eq!(b.pull_datagram(&mut [0; 64]).unwrap(), None);
    assert_eq!(b.peer().unwrap(), Peer::ClosedUnread);
    let (b, t) = Bridge::new(Kind::Datagram, true).unwrap();
    drop(t);
    assert_eq!(b.peer().unwrap(), Peer::Closed);
}

/// `SO_PASSCRED` on our end: what it changes. Our end is autobound to an
/// abstract name when it first sends (unix_dgram_sendmsg), the target's is
/// not, and the target receives no control messages.
#[test]
fn passcred_side_effects() {
    let (mut b, t) = Bridge::new(Kind::Datagram, true).unwrap();
    b.push_datagram(b"x", meta(1)).unwrap();
    rustix::io::write(&t, b"y").unwrap();
    let name = |fd: BorrowedFd<'_>| match rustix::net::getsockname(fd).unwrap() {
        rustix::net::SocketAddrAny::Unix(u) => (u.abstract_name().map(<[u8]>::len), u.path().is_some()),
        other => panic!("{other:?}"),
    };
    assert_eq!(name(b.as_fd()), (Some(5), false)); // autobind: 5 hex digits
    assert_eq!(name(t.as_fd()), (Some(0), false)); // unnamed (rustix shows an empty name)
    let mut space = [0u8; rustix::cmsg_space!(ScmCredentials(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut buf = [0u8; 8];
    let m = recvmsg(&t, &mut [IoSliceMut::new(&mut buf)], &mut control, RecvFlags::empty()).unwrap();
    assert_eq!(m.bytes, 1);
    assert!(control.drain().next().is_none());
    assert_eq!(b.pull_datagram(&mut buf).unwrap(), Some(1));
}

/// sock_diag finds a live unix socket by inode and not a released one.
#[test]
fn sock_diag_lookup_by_inode() {
    let (b, t) = Bridge::new(Kind::Stream, true).unwrap();
    let mut diag = crate::diag::UnixDiag::open().unwrap();
    assert!(diag.exists(b.our_ino).unwrap());
    assert!(diag.exists(b.ino()).unwrap());
    let d = dup(&t).unwrap();
    drop(t);
    assert!(diag.exists(b.ino()).unwrap()); // a copy keeps it alive
    drop(d);
    assert!(!diag.exists(b.ino()).unwrap());
    assert_eq!(crate::diag::target_exists(b.ino(), b.our_ino), Some(false));
    assert!(!diag.exists(u64::from(u32::MAX)).unwrap());
}

/// With our end in an edge-triggered epoll, the target's final close is
/// reported even when `EPOLLHUP` was already set by its `SHUT_RDWR`:
/// `unix_release_sock` wakes our wait queue (`sk_state_change`) and epoll
/// re-reports the item.
#[test]
fn edge_triggered_epoll_sees_the_close_after_shutdown() {
    let (b, t) = Bridge::new(Kind::Stream, true).unwrap();
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).unwrap();
    let flags = epoll::EventFlags::IN | epoll::EventFlags::OUT | epoll::EventFlags::RDHUP | epoll::EventFlags::ET;
    epoll::add(&ep, b.as_fd(), epoll::EventData::new_u64(1), flags).unwrap();
    let mut events = epoll::EventVec::with_capacity(4);
    epoll::wait(&ep, &mut events, 0).unwrap();
    assert_eq!(events.len(), 1); // initial EPOLLOUT
    epoll::wait(&ep, &mut events, 0).unwrap();
    assert_eq!(events.len(), 0);
    shutdown(&t, Shutdown::ReadWrite).unwrap();
    epoll::wait(&ep, &mut events, 0).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(b.peer().unwrap(), Peer::WriteShut);
    epoll::wait(&ep, &mut events, 0).unwrap();
    assert_eq!(events.len(), 0);
    drop(t);
    epoll::wait(&ep, &mut events, 0).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(b.peer().unwrap(), Peer::Closed);
}
