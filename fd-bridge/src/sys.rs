//! The few socket calls rustix 0.38 does not wrap: `SIOCINQ`/`SIOCOUTQ`
//! and `SO_SNDBUFFORCE`. The only module of the crate with `unsafe`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// A socket ioctl that writes one `int` to its argument.
#[derive(Debug, Clone, Copy)]
pub(crate) enum QueueIoctl {
    /// `SIOCINQ` (= `FIONREAD`): bytes in the receive queue. For `AF_UNIX`
    /// stream and seqpacket sockets `unix_inq_len` sums every skb in the
    /// queue; for `SOCK_DGRAM` only the head.
    Inq,
    /// `SIOCOUTQ` (= `TIOCOUTQ`): for `AF_UNIX`, `unix_outq_len` returns
    /// `sk_wmem_alloc_get()`, the *memory* (skb truesize) of what this socket
    /// sent and the peer has not consumed yet — not a byte count.
    Outq,
}

/// Runs `ioctl(fd, SIOCINQ|SIOCOUTQ, &int)`.
pub(crate) fn queue_ioctl(fd: BorrowedFd<'_>, which: QueueIoctl) -> io::Result<usize> {
    let req = match which {
        QueueIoctl::Inq => libc::FIONREAD,
        QueueIoctl::Outq => libc::TIOCOUTQ,
    };
    let mut value: libc::c_int = 0;
    // Both requests are defined by the kernel (net/unix/af_unix.c
    // unix_ioctl) to write exactly one `int` through the pointer.
    // SAFETY: `fd` is live for the borrow; the pointer is to a local `c_int`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req, &mut value as *mut libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(value).unwrap_or(0))
}

/// A privileged buffer-size socket option (needs `CAP_NET_ADMIN`; ignores
/// `net.core.wmem_max`/`rmem_max`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum ForceOpt {
    /// `SO_SNDBUFFORCE`.
    Snd,
    /// `SO_RCVBUFFORCE`.
    Rcv,
}

/// `setsockopt(fd, SOL_SOCKET, SO_{SND,RCV}BUFFORCE, value)`. The kernel
/// stores `max(2 * value, SOCK_MIN_{SND,RCV}BUF)`.
pub(crate) fn set_buffer_force(fd: BorrowedFd<'_>, which: ForceOpt, value: usize) -> io::Result<()> {
    let name = match which {
        ForceOpt::Snd => libc::SO_SNDBUFFORCE,
        ForceOpt::Rcv => libc::SO_RCVBUFFORCE,
    };
    let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is live for the borrow; the option reads `optlen` bytes
    // (the size of a `c_int`) from a pointer to a local `c_int`.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
