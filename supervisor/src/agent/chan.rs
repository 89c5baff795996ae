//! Moving one [`Msg`] and its fds over an agent's `SOCK_SEQPACKET` socket.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

use super::wire::Msg;
use crate::sys;

/// Largest message either side accepts: a send or receive of
/// `kernel::ops::DATA_MAX` bytes with room for the rest.
pub const MSG_MAX: usize = crate::kernel::DATA_MAX + (64 << 10);

/// Most fds one message carries (the kernel's `SCM_MAX_FD`).
pub const FDS_MAX: usize = 253;

/// Control buffer for [`FDS_MAX`] fds.
const CONTROL_CAP: usize = 2048;

/// Sends `m` with `fds` (numbers of this process, open for the call).
/// `EAGAIN` when `nonblocking` and there is no room.
pub fn send(chan: BorrowedFd<'_>, m: &Msg, fds: &[RawFd], nonblocking: bool) -> io::Result<()> {
    let bytes = m.encode();
    let control = if fds.is_empty() {
        Vec::new()
    } else {
        let data = fds.iter().flat_map(|f| f.to_ne_bytes()).collect();
        sys::build_cmsgs(&[(libc::SOL_SOCKET, libc::SCM_RIGHTS, data)])
    };
    let mut flags = libc::MSG_NOSIGNAL;
    if nonblocking {
        flags |= libc::MSG_DONTWAIT;
    }
    loop {
        match sys::sendmsg(chan, None, &[&bytes], &control, flags) {
            Ok(_) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// What [`recv`] got.
pub enum Got {
    /// A well-formed message and the fds that came with it.
    Msg(Msg, Vec<OwnedFd>),
    /// The other end closed.
    Eof,
    /// Nothing there yet (`nonblocking` only).
    Empty,
    /// Too long, truncated fds or not a message: the fds are closed.
    Malformed(&'static str),
}

/// Receives one message.
pub fn recv(chan: BorrowedFd<'_>, nonblocking: bool) -> io::Result<Got> {
    let base = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
    // The length first, so the buffer fits the message exactly.
    let len = loop {
        match sys::recvmsg(chan.as_fd(), &mut [], 0, base | libc::MSG_PEEK | libc::MSG_TRUNC) {
            Ok(r) => break r.n,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(Got::Empty),
            Err(e) => return Err(e),
        }
    };
    if len == 0 {
        return Ok(Got::Eof);
    }
    if len > MSG_MAX {
        // Drop it (and any fds with it) unread.
        let _ = sys::recvmsg(chan, &mut [], CONTROL_CAP, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC)
            .map(|r| take_fds(&r.control));
        return Ok(Got::Malformed("message too long"));
    }
    let mut buf = vec![0u8; len];
    let r = loop {
        match sys::recvmsg(chan, &mut buf, CONTROL_CAP, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC) {
            Ok(r) => break r,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) => return Err(e),
        }
    };
    // Own every fd that arrived before looking at anything else, so none
    // leaks whatever the message says.
    let fds = take_fds(&r.control);
    if r.flags & (libc::MSG_TRUNC | libc::MSG_CTRUNC) != 0 || r.n != len {
        return Ok(Got::Malformed("truncated message"));
    }
    if crate::sys::parse_cmsgs(&r.control)
        .iter()
        .any(|(l, t, _)| (*l, *t) != (libc::SOL_SOCKET, libc::SCM_RIGHTS))
    {
        return Ok(Got::Malformed("unexpected control message"));
    }
    match Msg::decode(&buf) {
        Some(m) => Ok(Got::Msg(m, fds)),
        None => Ok(Got::Malformed("undecodable message")),
    }
}

/// The fds of every `SCM_RIGHTS` message in `control`, owned.
fn take_fds(control: &[u8]) -> Vec<OwnedFd> {
    crate::sys::parse_cmsgs(control)
        .into_iter()
        .filter(|(l, t, _)| (*l, *t) == (libc::SOL_SOCKET, libc::SCM_RIGHTS))
        .flat_map(|(_, _, data)| sys::own_fds(&data))
        .collect()
}

/// Waits until `chan` polls `what` or `deadline` passes; `false` on timeout.
pub fn wait(chan: BorrowedFd<'_>, what: rustix::event::PollFlags, deadline: std::time::Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        let mut p = [rustix::event::PollFd::new(&chan, what)];
        match rustix::event::poll(&mut p, ms) {
            Ok(0) => continue,
            Ok(_) => return true,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
}
