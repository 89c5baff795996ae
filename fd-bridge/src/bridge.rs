//! [`Bridge`]: the supervisor's end of one user-space socket's socketpair.
//!
//! What this module is for: creating the pair, moving bytes and datagrams
//! across it, making the target's end (not) writable or readable on demand,
//! and reading what the target did to its end. What it is not for: deciding
//! anything about TCP/UDP (the supervisor does), or installing the fd in the
//! target (seccomp `ADDFD`, in the supervisor).

use std::collections::VecDeque;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{fcntl_getfl, fcntl_setfl, fstat, OFlags};
use rustix::io::Errno;
use rustix::net::{
    recv, recvmsg, send, sendmsg, shutdown, socketpair, sockopt, AddressFamily, RecvAncillaryBuffer, RecvFlags,
    SendAncillaryBuffer, SendFlags, Shutdown, SocketFlags, SocketType,
};

use crate::diag;
use crate::sys::{self, ForceOpt, QueueIoctl};

/// The socket buffer (`sk_sndbuf`, as `getsockopt(SO_SNDBUF)` reports it)
/// asked for on both ends of a stream pair: 1 MiB. The kernel doubles the
/// value passed to `setsockopt`, so half of it is passed.
pub const STREAM_BUFFER: usize = 1 << 20;

/// The smallest `sk_sndbuf` a datagram pair's ends get: 208 KiB, Linux's
/// default `net.core.wmem_default`, about what a UDP socket's receive buffer
/// holds by default. Each datagram costs its truesize (payload plus about
/// 0.5-1 KiB of skb), and a datagram longer than `sk_sndbuf - 32` is refused
/// with `EMSGSIZE` (`unix_dgram_sendmsg`), so 64 KiB datagrams always fit.
pub const DATAGRAM_BUFFER: usize = 212_992;

/// The largest datagram [`Bridge::pull_datagram`] can need room for: a UDP
/// payload is at most 65,507 (IPv4) or 65,527 (IPv6, no jumbograms) bytes.
pub const MAX_DATAGRAM: usize = 65_536;

/// Filler offered per `send` on the target's end while holding writes.
/// `unix_stream_sendmsg` splits a send into skbs of at most
/// `sk_sndbuf / 2 - 64` bytes (2240 at the minimum buffer) and stops, with
/// `MSG_DONTWAIT`, once `sk_wmem_alloc >= sk_sndbuf`: on 6.18 one send is
/// taken as two skbs, 4096 bytes (8704 of truesize), and the next fails with
/// `EAGAIN`.
const FILLER: [u8; 4096] = [0; 4096];

/// Upper bound on filler sends while holding writes (each adds at least one
/// skb of truesize > 1 KiB against a 4608-byte `sk_sndbuf`; on 6.18 the
/// first send already fills it).
const MAX_FILLER_SENDS: usize = 64;

/// Which transport a pair stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// TCP: a `SOCK_STREAM` pair (a byte stream, half-close with
    /// `shutdown(SHUT_WR)`).
    Stream,
    /// UDP: a `SOCK_SEQPACKET` pair. Message boundaries are kept like
    /// `SOCK_DGRAM`, and unlike `SOCK_DGRAM` a closed peer is seen (EOF,
    /// `EPOLLHUP`), which a connected datagram pair would not report.
    Datagram,
}

/// What the target did to its end, as seen from ours (see [`Bridge::peer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// Open both ways.
    Open,
    /// `shutdown(SHUT_WR)`: we read EOF after its data, and can still write
    /// to it. Our end polls `EPOLLRDHUP` (and `EPOLLIN`) without `EPOLLHUP`.
    /// TCP: a FIN to send. Also a target end shut down both ways
    /// (`SHUT_RDWR`, or `SHUT_WR` after our [`shut_write`](Bridge::shut_write))
    /// but still open: our writes then fail with `EPIPE`.
    WriteShut,
    /// Every fd of the target's end is closed (`unix_release_sock` set our
    /// `sk_shutdown` to `SHUTDOWN_MASK`: `EPOLLHUP`), and it had read all we
    /// wrote. TCP: FIN, and nothing more will be read.
    Closed,
    /// Closed with data we wrote still unread at its end:
    /// `unix_release_sock` set `sk_err = ECONNRESET` on our end (`EPOLLERR`).
    /// Linux TCP answers a close with unread data with RST.
    ClosedUnread,
}

/// An ongoing [`Bridge::hold_writes`].
#[derive(Debug)]
struct Hold {
    /// Filler bytes at the head of our receive queue.
    filler: usize,
    /// The target end's `sk_sndbuf` before the hold (as `getsockopt` says).
    saved_sndbuf: usize,
}

/// What the supervisor knows of a datagram it pushes to the target, kept
/// beside it until the target reads it: what a trapped receive shows
/// besides the bytes (the source address, and the control messages the
/// program asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramMeta {
    /// Sender.
    pub from: SocketAddr,
    /// The local address it was sent to.
    pub to: IpAddr,
    /// IPv4 TTL / IPv6 hop limit it arrived with.
    pub hop_limit: u8,
    /// IPv4 TOS byte / IPv6 traffic class it arrived with.
    pub traffic_class: u8,
}

/// One datagram pushed to the target and maybe not read yet.
#[derive(Debug, Clone, Copy)]
struct Pushed {
    len: usize,
    meta: DatagramMeta,
}

/// The supervisor's end of a socketpair whose other end is a user-space
/// socket's fd in the target. Dropping it closes our end: the target then
/// reads EOF (and `ECONNRESET` first if our receive queue held unread bytes,
/// see [`Bridge::reset`]).
#[derive(Debug)]
pub struct Bridge {
    /// Our end: `O_NONBLOCK | O_CLOEXEC`.
    fd: OwnedFd,
    kind: Kind,
    /// `st_ino` of the target's end.
    ino: u64,
    /// `st_ino` of ours (to check that sock_diag works).
    our_ino: u64,
    /// Data the target wrote before a hold, read out of the way of the
    /// filler; served by `read` before the socket.
    stash: Vec<u8>,
    stash_pos: usize,
    hold: Option<Hold>,
    /// We saw `ECONNRESET` (it is cleared by the read that reports it).
    reset_seen: AtomicBool,
    /// sock_diag said the target's end is gone (it cannot come back).
    gone_seen: AtomicBool,
    /// Datagrams pushed and, as far as we know, still queued at the target.
    pushed: VecDeque<Pushed>,
    /// Sum of `pushed[..].len`.
    pushed_bytes: usize,
}

fn wrong_kind(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Sets `sk_sndbuf` to `value` (as `getsockopt` reports it): the privileged
/// option first, then the capped one. Best effort for the caller to ignore.
fn set_sndbuf(fd: BorrowedFd<'_>, value: usize) -> io::Result<()> {
    let half = value / 2;
    match sys::set_buffer_force(fd, ForceOpt::Snd, half) {
        Ok(()) => Ok(()),
        Err(_) => sockopt::set_socket_send_buffer_size(fd, half).map_err(Into::into),
    }
}

/// Same for `sk_rcvbuf`.
fn set_rcvbuf(fd: BorrowedFd<'_>, value: usize) -> io::Result<()> {
    let half = value / 2;
    match sys::set_buffer_force(fd, ForceOpt::Rcv, half) {
        Ok(()) => Ok(()),
        Err(_) => sockopt::set_socket_recv_buffer_size(fd, half).map_err(Into::into),
    }
}

/// A stream end's buffers: [`STREAM_BUFFER`] each way, best effort.
pub(crate) fn set_buffers(fd: BorrowedFd<'_>) {
    let _ = set_sndbuf(fd, STREAM_BUFFER);
    let _ = set_rcvbuf(fd, STREAM_BUFFER);
}

fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = fcntl_getfl(fd)?;
    let flags = if on {
        flags | OFlags::NONBLOCK
    } else {
        flags - OFlags::NONBLOCK
    };
    fcntl_setfl(fd, flags)?;
    Ok(())
}

/// `poll(fd, events, 0)`: the readiness right now.
fn poll_now(fd: BorrowedFd<'_>, events: PollFlags) -> io::Result<PollFlags> {
    let mut fds = [PollFd::new(&fd, events)];
    loop {
        match poll(&mut fds, 0) {
            Ok(_) => return Ok(fds[0].revents()),
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

impl Bridge {
    /// Creates the pair; returns the bridge and the target's end, to be
    /// installed in the target (`SECCOMP_IOCTL_NOTIF_ADDFD`) and then dropped
    /// by the caller — keeping a copy would keep the target's socket alive
    /// and hide its close from [`peer`](Self::peer).
    ///
    /// Both ends are created `O_CLOEXEC` (in the supervisor; `ADDFD` sets the
    /// target's own fd flags). Ours is `O_NONBLOCK`. `nonblocking` sets
    /// `O_NONBLOCK` on the target end's open file: file status flags live in
    /// the `struct file`, which the fd installed by `ADDFD` shares.
    ///
    /// Stream pairs get [`STREAM_BUFFER`] of `sk_sndbuf` on both ends
    /// (`SO_SNDBUFFORCE` with `CAP_NET_ADMIN`, else `SO_SNDBUF` capped at
    /// `2 * net.core.wmem_max`, best effort). In an `AF_UNIX` stream it is
    /// the *sender's* `sk_sndbuf` that bounds the bytes in flight
    /// (`unix_stream_sendmsg` allocates each skb with
    /// `sock_alloc_send_pskb` charged to the sender); `sk_rcvbuf` is set too
    /// but `af_unix` streams never consult it. Datagram pairs get at least
    /// [`DATAGRAM_BUFFER`], and our end has `SO_PASSCRED` so that an empty
    /// datagram can be told from EOF (see [`pull_datagram`](Self::pull_datagram)).
    pub fn new(kind: Kind, nonblocking: bool) -> io::Result<(Bridge, OwnedFd)> {
        let ty = match kind {
            Kind::Stream => SocketType::STREAM,
            Kind::Datagram => SocketType::SEQPACKET,
        };
        let (ours, theirs) = socketpair(AddressFamily::UNIX, ty, SocketFlags::CLOEXEC, None)?;
        set_nonblocking(ours.as_fd(), true)?;
        if nonblocking {
            set_nonblocking(theirs.as_fd(), true)?;
        }
        match kind {
            Kind::Stream => {
                set_buffers(ours.as_fd());
                set_buffers(theirs.as_fd());
            }
            Kind::Datagram => {
                for end in [ours.as_fd(), theirs.as_fd()] {
                    if sockopt::get_socket_send_buffer_size(end)? < DATAGRAM_BUFFER {
                        let _ = set_sndbuf(end, DATAGRAM_BUFFER);
                    }
                }
                sockopt::set_socket_passcred(&ours, true)?;
            }
        }
        let ino = fstat(&theirs)?.st_ino as u64;
        let bridge = Bridge::with_ends(ours, kind, ino)?;
        Ok((bridge, theirs))
    }

    /// A stream bridge over `ours`, an accepted connection whose peer is
    /// the target's socket with inode `ino` (see [`Hub::attach`](crate::Hub::attach)).
    pub(crate) fn adopt_stream(ours: OwnedFd, ino: u64) -> io::Result<Bridge> {
        set_nonblocking(ours.as_fd(), true)?;
        set_buffers(ours.as_fd());
        Bridge::with_ends(ours, Kind::Stream, ino)
    }

    fn with_ends(ours: OwnedFd, kind: Kind, ino: u64) -> io::Result<Bridge> {
        let our_ino = fstat(&ours)?.st_ino as u64;
        Ok(Bridge {
            fd: ours,
            kind,
            ino,
            our_ino,
            stash: Vec::new(),
            stash_pos: 0,
            hold: None,
            reset_seen: AtomicBool::new(false),
            gone_seen: AtomicBool::new(false),
            pushed: VecDeque::new(),
            pushed_bytes: 0,
        })
    }

    /// The transport this pair stands for.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Inode number of the target's end (`fstat` `st_ino`, sockfs): the
    /// identity by which the supervisor recognises this socket when it
    /// duplicates a target fd with `pidfd_getfd` and `fstat`s it. Every fd
    /// sharing the target end's open file (dup, fork, `SCM_RIGHTS`) has it.
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// Our end, for epoll. Readable: the target wrote (or shut down, or
    /// closed). Writable: room for more data to the target. `EPOLLHUP` /
    /// `EPOLLERR`: see [`peer`](Self::peer).
    ///
    /// While [holding writes](Self::hold_writes) our end stays readable
    /// (the filler is in its receive queue) though [`read`](Self::read)
    /// returns `WouldBlock`: register it edge-triggered, or without
    /// `EPOLLIN` while holding (the target cannot write then; its
    /// shutdown or close still shows as `EPOLLRDHUP`/`EPOLLHUP`).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn expect(&self, kind: Kind, what: &'static str) -> io::Result<()> {
        if self.kind == kind {
            Ok(())
        } else {
            Err(wrong_kind(what))
        }
    }

    /// Maps a read error: `ECONNRESET` is remembered for [`peer`](Self::peer)
    /// and reported as EOF (the kernel reports it once, then EOF).
    fn read_result(&self, r: rustix::io::Result<usize>) -> io::Result<usize> {
        match r {
            Ok(n) => Ok(n),
            Err(Errno::CONNRESET) => {
                self.reset_seen.store(true, Ordering::Relaxed);
                Ok(0)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// While holding, the queue is filler only: EOF if the target shut its
    /// writing side down (or closed), else nothing to read.
    fn read_while_holding(&self) -> io::Result<usize> {
        let ev = poll_now(self.fd.as_fd(), PollFlags::IN | PollFlags::RDHUP)?;
        if ev.intersects(PollFlags::RDHUP | PollFlags::HUP) {
            if ev.contains(PollFlags::ERR) {
                self.reset_seen.store(true, Ordering::Relaxed);
            }
            Ok(0)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }

    /// Reads what the target wrote. `Ok(0)` = EOF: the target shut down
    /// writing or closed (after a close with unread data, `unix_stream_read_generic`
    /// returns `ECONNRESET` once: it is reported as EOF here and as
    /// [`Peer::ClosedUnread`] by [`peer`](Self::peer)). `WouldBlock` when
    /// nothing is there. Never returns filler bytes (see
    /// [`hold_writes`](Self::hold_writes)). An empty `buf` reads nothing and
    /// returns `Ok(0)`. Stream pairs only.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.expect(Kind::Stream, "read on a datagram bridge")?;
        if buf.is_empty() {
            return Ok(0);
        }
        if self.stash_pos < self.stash.len() {
            let n = buf.len().min(self.stash.len() - self.stash_pos);
            buf[..n].copy_from_slice(&self.stash[self.stash_pos..self.stash_pos + n]);
            self.stash_pos += n;
            if self.stash_pos == self.stash.len() {
                self.stash = Vec::new();
                self.stash_pos = 0;
            }
            return Ok(n);
        }
        if self.hold.is_some() {
            return self.read_while_holding();
        }
        let r = rustix::io::read(&self.fd, buf);
        self.read_result(r)
    }

    /// [`read`](Self::read) into several buffers (`readv`).
    pub fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        self.expect(Kind::Stream, "read on a datagram bridge")?;
        if self.stash_pos < self.stash.len() || self.hold.is_some() {
            // Rare (a hold is short and the stash usually empty): one buffer.
            return match bufs.iter_mut().find(|b| !b.is_empty()) {
                Some(b) => self.read(b),
                None => Ok(0),
            };
        }
        let r = rustix::io::readv(&self.fd, bufs);
        self.read_result(r)
    }

    /// Data for the target to read. `WouldBlock` when the pair is full
    /// (backpressure: our `sk_sndbuf`); `BrokenPipe` (`EPIPE`, no `SIGPIPE`:
    /// `MSG_NOSIGNAL`) once the target closed or shut down reading (its
    /// `SHUT_RD` gives our end `SEND_SHUTDOWN`, which poll does not show:
    /// [`peer`](Self::peer) still says `Open`), or after
    /// [`shut_write`](Self::shut_write). Stream pairs only.
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.expect(Kind::Stream, "write on a datagram bridge")?;
        Ok(send(&self.fd, data, SendFlags::NOSIGNAL)?)
    }

    /// [`write`](Self::write) from several buffers (`sendmsg`).
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.expect(Kind::Stream, "write on a datagram bridge")?;
        Ok(sendmsg(
            &self.fd,
            bufs,
            &mut SendAncillaryBuffer::default(),
            SendFlags::NOSIGNAL,
        )?)
    }

    /// What we wrote and the target has not read yet, as `SIOCOUTQ` on our
    /// end reports it, for stats and flow control. For `AF_UNIX`,
    /// `unix_outq_len` returns `sk_wmem_alloc`: the skb *truesize* of the
    /// unread data, i.e. an upper estimate of the bytes (payload plus skb
    /// overhead, page-rounded; a partly read skb counts whole: 1000 bytes
    /// written in one call show as 2304 on 6.18). 0 exactly
    /// when the target has read everything. For the byte count use
    /// [`unread_by_target_exact`](Self::unread_by_target_exact).
    pub fn unread_by_target(&self) -> io::Result<usize> {
        sys::queue_ioctl(self.fd.as_fd(), QueueIoctl::Outq)
    }

    /// Bytes queued at the target's end and not read yet: `SIOCINQ` on
    /// `target_end` (a duplicate of it), which for streams and seqpackets
    /// sums the whole receive queue (`unix_inq_len`).
    pub fn unread_by_target_exact(&self, target_end: BorrowedFd<'_>) -> io::Result<usize> {
        sys::queue_ioctl(target_end, QueueIoctl::Inq)
    }

    /// The target reads EOF after what was written (a FIN arrived):
    /// `shutdown(SHUT_WR)` on our end. `unix_shutdown` sets `RCV_SHUTDOWN`
    /// on the target's end: it polls `EPOLLIN | EPOLLRDHUP`, reads the
    /// remaining data then 0, and can still write to us.
    pub fn shut_write(&mut self) -> io::Result<()> {
        shutdown(&self.fd, Shutdown::Write)?;
        Ok(())
    }

    /// Connect in progress: make the target's end not writable (no
    /// `EPOLLOUT`/`POLLOUT`, writes `EAGAIN` or block) until
    /// [`release_writes`](Self::release_writes). `target_end` is the fresh
    /// target end or a duplicate of it (`pidfd_getfd`) the caller holds until
    /// release (note that while it holds one, a close by the target is not
    /// seen: the socket is still open).
    ///
    /// How: the target end's `SO_SNDBUF` is shrunk to the minimum
    /// (`SOCK_MIN_SNDBUF`, 4608 on x86-64 after doubling) and filled, by
    /// writes on the target end (`MSG_DONTWAIT`) until `EAGAIN`, with filler
    /// that lands in our receive queue, is counted, and is never returned by
    /// [`read`](Self::read). `unix_writable` is `wmem_alloc << 2 <= sndbuf`
    /// and `sock_alloc_send_pskb` refuses a send while
    /// `wmem_alloc >= sndbuf`, so the end is neither writable nor able to
    /// write. Cheap: on 6.18 it takes 4096 bytes of filler (8704 bytes of
    /// skb truesize against the 4608-byte buffer). Data the target wrote before is
    /// first moved out of the way (read into an internal buffer that `read`
    /// serves first). Stream pairs only; a second call while holding does
    /// nothing.
    ///
    /// Our end stays readable meanwhile (see [`as_fd`](Self::as_fd)).
    /// Race: a target thread writing on this socket *during* the call can
    /// put its bytes behind or between the filler (the send buffer is shrunk
    /// first, so at most one ~2 KiB skb), and release would then drop those
    /// and leave filler in the stream. A program cannot rely on writing to a
    /// TCP socket that is not connected yet (Linux fails it with `EPIPE`), so
    /// call this when the target's `connect` is trapped, or before `ADDFD`
    /// (race-free). Also usable on a listener's end, which then never polls
    /// writable, like a listening TCP socket.
    pub fn hold_writes(&mut self, target_end: BorrowedFd<'_>) -> io::Result<()> {
        self.expect(Kind::Stream, "hold_writes on a datagram bridge")?;
        if self.hold.is_some() {
            return Ok(());
        }
        let saved_sndbuf = sockopt::get_socket_send_buffer_size(target_end)?;
        // 1 becomes max(2, SOCK_MIN_SNDBUF) (sk_setsockopt, SO_SNDBUF). First,
        // so that a concurrent writer can add at most one skb from here on.
        sockopt::set_socket_send_buffer_size(target_end, 1)?;
        // Move earlier data out of the way of the filler.
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match rustix::io::read(&self.fd, &mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    if self.stash_pos > 0 {
                        self.stash.drain(..self.stash_pos);
                        self.stash_pos = 0;
                    }
                    self.stash.extend_from_slice(&chunk[..n]);
                }
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(Errno::CONNRESET) => {
                    self.reset_seen.store(true, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    let _ = set_sndbuf(target_end, saved_sndbuf);
                    return Err(e.into());
                }
            }
        }
        let mut filler = 0;
        for _ in 0..MAX_FILLER_SENDS {
            match send(target_end, &FILLER, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
                Ok(n) => filler += n,
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    // Put things back as they were.
                    self.hold = Some(Hold { filler, saved_sndbuf });
                    let _ = self.release_writes(target_end);
                    return Err(e.into());
                }
            }
        }
        self.hold = Some(Hold { filler, saved_sndbuf });
        Ok(())
    }

    /// Ends a hold: restores the target end's `SO_SNDBUF` (`SO_SNDBUFFORCE`
    /// if allowed, else `SO_SNDBUF`), then drains the filler from our end.
    /// Freeing the filler skbs (`sock_wfree`) calls `unix_write_space`,
    /// which wakes the target's pollers: `EPOLLOUT` fires on its end and a
    /// blocked writer proceeds. Nothing happens if not holding.
    pub fn release_writes(&mut self, target_end: BorrowedFd<'_>) -> io::Result<()> {
        let Some(hold) = self.hold.take() else {
            return Ok(());
        };
        let restored = set_sndbuf(target_end, hold.saved_sndbuf);
        let mut left = hold.filler;
        let mut scratch = [0u8; 4096];
        while left > 0 {
            let want = left.min(scratch.len());
            match rustix::io::read(&self.fd, &mut scratch[..want]) {
                Ok(0) => break,
                Ok(n) => left -= n,
                Err(Errno::INTR) => continue,
                Err(e) => {
                    // Filler is queued before anything the target can write;
                    // not finding it means the queue is not what we think.
                    self.hold = Some(Hold {
                        filler: left,
                        saved_sndbuf: hold.saved_sndbuf,
                    });
                    return Err(e.into());
                }
            }
        }
        restored
    }

    /// Whether writes are held ([`hold_writes`](Self::hold_writes) without
    /// [`release_writes`](Self::release_writes) yet).
    pub fn is_holding(&self) -> bool {
        self.hold.is_some()
    }

    /// Queues a datagram for the target, remembering what is known of it
    /// for [`head_meta`](Self::head_meta). `WouldBlock` when the pair is full
    /// (our `sk_sndbuf` holds the truesize of every datagram the target has
    /// not read; for a socketpair `unix_dgram_sendmsg` skips the receiver's
    /// backlog check since the receiver's peer is us): drop the datagram, as
    /// a UDP socket whose receive buffer is full does. Datagram pairs only.
    pub fn push_datagram(&mut self, data: &[u8], meta: DatagramMeta) -> io::Result<()> {
        self.expect(Kind::Datagram, "push_datagram on a stream bridge")?;
        send(&self.fd, data, SendFlags::NOSIGNAL)?;
        self.pushed.push_back(Pushed { len: data.len(), meta });
        self.pushed_bytes += data.len();
        Ok(())
    }

    /// A datagram the target sent with `write`/`send` (untrapped):
    /// `Ok(Some(n))` (`n` may be 0 for an empty datagram), `Ok(None)` on EOF
    /// (the target shut down writing or closed: for a non-blocking
    /// `SOCK_SEQPACKET`, `unix_dgram_recvmsg` returns 0 once `RCV_SHUTDOWN`
    /// is set and the queue is empty), `WouldBlock` when none.
    ///
    /// An empty datagram and EOF both make `recvmsg` return 0; they are told
    /// apart by the `SCM_CREDENTIALS` message that `SO_PASSCRED` on our end
    /// makes the kernel attach to every datagram (`unix_maybe_add_creds`),
    /// and that EOF lacks.
    ///
    /// A datagram longer than `buf` is consumed and dropped, and
    /// `Err(EMSGSIZE)` returned (the next call reads the next datagram).
    /// With `buf.len() >= MAX_DATAGRAM` (65,536) this happens only to
    /// datagrams no UDP socket could send: the target's end accepts up to
    /// `sk_sndbuf - 32` bytes per datagram (`unix_dgram_sendmsg`; about
    /// 208 KiB with [`DATAGRAM_BUFFER`]), where Linux UDP would have failed
    /// the send with `EMSGSIZE`. A buffer of `sk_sndbuf` bytes never
    /// truncates.
    pub fn pull_datagram(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.expect(Kind::Datagram, "pull_datagram on a stream bridge")?;
        let mut space = [0u8; rustix::cmsg_space!(ScmCredentials(1))];
        loop {
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let r = recvmsg(&self.fd, &mut [IoSliceMut::new(buf)], &mut control, RecvFlags::TRUNC);
            let msg = match r {
                Ok(m) => m,
                Err(Errno::INTR) => continue,
                Err(Errno::CONNRESET) => {
                    self.reset_seen.store(true, Ordering::Relaxed);
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            let is_datagram = control.drain().next().is_some();
            if msg.bytes > buf.len() || msg.flags.contains(RecvFlags::TRUNC) {
                return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
            }
            return Ok(if msg.bytes == 0 && !is_datagram {
                None
            } else {
                Some(msg.bytes)
            });
        }
    }

    /// Reconciles the source-address queue with what the target already
    /// read untrapped (plain `recv`/`read` consume datagrams without the
    /// supervisor seeing it). `target_end` is a duplicate of the target's
    /// end.
    ///
    /// 1. `SIOCINQ` on the target end gives the bytes still queued there
    ///    (`unix_inq_len` sums the whole queue for `SOCK_SEQPACKET`); bytes
    ///    pushed minus that = bytes consumed, and since the queue is FIFO and
    ///    datagrams are consumed whole (a short read discards the rest),
    ///    entries are popped from the head until that many bytes are
    ///    accounted for. An empty datagram before a consumed one was consumed
    ///    too.
    /// 2. A `MSG_PEEK | MSG_TRUNC` on the target end gives the length of the
    ///    datagram at its head: none queued drops every entry; a non-empty
    ///    one drops the empty datagrams still at our head.
    ///
    /// Limitation: empty datagrams carry no bytes, so when the target's head
    /// is itself an empty datagram, how many of a run of consecutive empty
    /// datagrams it already read cannot be known; their entries stay, and
    /// [`head_source`](Self::head_source) may name the source of an earlier
    /// empty datagram of the run (exact when the run has a single source).
    /// Also racy by nature if another thread of the target reads at the same
    /// time; call it while the thread that asks (a trapped `recvfrom`) is
    /// stopped, and expect other readers to make it approximate.
    pub fn sync_sources(&mut self, target_end: BorrowedFd<'_>) -> io::Result<()> {
        self.expect(Kind::Datagram, "sync_sources on a stream bridge")?;
        let queued = sys::queue_ioctl(target_end, QueueIoctl::Inq)?;
        let mut consumed = self.pushed_bytes.saturating_sub(queued);
        while let Some(front) = self.pushed.front() {
            if consumed == 0 {
                break;
            }
            if front.len > consumed {
                break; // Inconsistent (cannot happen with whole datagrams).
            }
            consumed -= front.len;
            self.pop_front();
        }
        let mut byte = [0u8; 1];
        let head = loop {
            match recv(
                target_end,
                &mut byte,
                RecvFlags::PEEK | RecvFlags::TRUNC | RecvFlags::DONTWAIT,
            ) {
                Ok(n) => break Some(n),
                Err(Errno::AGAIN) => break None,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        match head {
            None => {
                self.pushed.clear();
                self.pushed_bytes = 0;
            }
            // An empty datagram at the head (or EOF, after our shut_write):
            // the run of empty entries at our head is ambiguous, keep it.
            Some(0) => {}
            Some(_) => {
                while self.pushed.front().is_some_and(|p| p.len == 0) {
                    self.pop_front();
                }
            }
        }
        Ok(())
    }

    fn pop_front(&mut self) {
        if let Some(p) = self.pushed.pop_front() {
            self.pushed_bytes -= p.len;
        }
    }

    /// Source of the datagram at the head of the target's queue (after
    /// [`sync_sources`](Self::sync_sources)); `None` if none is queued.
    pub fn head_source(&self) -> Option<SocketAddr> {
        self.head_meta().map(|m| m.from)
    }

    /// What was pushed with the datagram at the head of the target's queue
    /// (after [`sync_sources`](Self::sync_sources), with its limitation);
    /// `None` if none is queued.
    pub fn head_meta(&self) -> Option<DatagramMeta> {
        self.pushed.front().map(|p| p.meta)
    }

    /// Datagrams pushed and not yet read by the target (after
    /// [`sync_sources`](Self::sync_sources)).
    pub fn queued_datagrams(&self) -> usize {
        self.pushed.len()
    }

    /// What the target did to its end, from `poll` on our end (which does
    /// not consume `sk_err`, unlike `SO_ERROR`) and the `ECONNRESET` an
    /// earlier read may have consumed:
    ///
    /// - `EPOLLERR` (`sk_err = ECONNRESET`, set by `unix_release_sock` when
    ///   the target's receive queue was not empty): [`Peer::ClosedUnread`];
    /// - `EPOLLHUP` (our `sk_shutdown == SHUTDOWN_MASK`): [`Peer::Closed`],
    ///   or [`Peer::WriteShut`] if the target's end still exists;
    /// - `EPOLLRDHUP` alone (`RCV_SHUTDOWN`): [`Peer::WriteShut`];
    /// - else [`Peer::Open`].
    ///
    /// `EPOLLHUP` alone is ambiguous: `unix_shutdown` completes our
    /// `sk_shutdown` just as `unix_release_sock` does when the target
    /// shuts its end down both ways (`SHUT_RDWR`, or `SHUT_WR` after our
    /// [`shut_write`](Self::shut_write)) without closing it. So then, and
    /// only then, the target's end is looked up by inode with sock_diag
    /// (`UNIX_DIAG`, net/unix/diag.c `unix_lookup_by_ino`: a released socket
    /// is no longer in the table): a netlink round trip, done until the
    /// socket is found gone (remembered). If sock_diag cannot answer (no
    /// `CONFIG_UNIX_DIAG`), the answer is `Closed`.
    ///
    /// While the supervisor holds a duplicate of the target's end (e.g.
    /// during [`hold_writes`](Self::hold_writes)), the target's close is not
    /// a close: the socket stays open.
    pub fn peer(&self) -> io::Result<Peer> {
        let ev = poll_now(self.fd.as_fd(), PollFlags::IN | PollFlags::RDHUP)?;
        if ev.contains(PollFlags::ERR) {
            self.reset_seen.store(true, Ordering::Relaxed);
        }
        if self.reset_seen.load(Ordering::Relaxed) {
            return Ok(Peer::ClosedUnread);
        }
        if !ev.contains(PollFlags::HUP) {
            return Ok(if ev.contains(PollFlags::RDHUP) {
                Peer::WriteShut
            } else {
                Peer::Open
            });
        }
        if !self.gone_seen.load(Ordering::Relaxed) {
            if diag::target_exists(self.ino, self.our_ino) == Some(true) {
                return Ok(Peer::WriteShut);
            }
            self.gone_seen.store(true, Ordering::Relaxed);
            // A close with unread data may have come after the poll.
            if poll_now(self.fd.as_fd(), PollFlags::IN)?.contains(PollFlags::ERR) {
                self.reset_seen.store(true, Ordering::Relaxed);
                return Ok(Peer::ClosedUnread);
            }
        }
        Ok(Peer::Closed)
    }

    /// Connection reset or refused: tell the target, by closing our end.
    /// What the target's end then shows (`unix_release_sock` on ours):
    ///
    /// - always: `sk_shutdown = SHUTDOWN_MASK`, so `EPOLLIN | EPOLLRDHUP |
    ///   EPOLLHUP`, and `EPOLLOUT` (its send space is free again, as
    ///   `tcp_poll` also reports after a RST); `read` returns what we wrote and it had not read yet,
    ///   then 0 (EOF); `write` fails with `EPIPE` (and `SIGPIPE` without
    ///   `MSG_NOSIGNAL`) — where Linux TCP would say `ECONNRESET` once;
    /// - if our receive queue held unread bytes (data it wrote that we did
    ///   not read, or the filler while [holding writes](Self::hold_writes)):
    ///   also `sk_err = ECONNRESET`, so `EPOLLERR`, and its first read after
    ///   the queued data fails with `ECONNRESET`, as after a TCP RST.
    ///
    /// So a refused connect (writes held) is always seen as `ECONNRESET`;
    /// otherwise use [`reset_with`](Self::reset_with) to make sure.
    pub fn reset(self) {
        drop(self);
    }

    /// [`reset`](Self::reset), making sure the target sees `ECONNRESET`:
    /// if our receive queue is empty, one byte is first written on
    /// `target_end` (a duplicate of the target's end; `MSG_DONTWAIT`) so
    /// that our end closes with unread data. If that write finds no room,
    /// the target's sends already filled our queue.
    pub fn reset_with(self, target_end: BorrowedFd<'_>) {
        if sys::queue_ioctl(self.fd.as_fd(), QueueIoctl::Inq).unwrap_or(0) == 0 {
            let _ = send(target_end, &[0u8], SendFlags::DONTWAIT | SendFlags::NOSIGNAL);
        }
        drop(self);
    }
}

impl AsFd for Bridge {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests;
