//! A TCP socket's kernel object before and outside a connection: the
//! unconnected `AF_UNIX` stream socket a program holds from `socket()` on,
//! the [`Hub`] that connects it when the program connects, and the
//! [`Lobby`] it becomes when the program listens.
//!
//! Why: a socketpair end is born connected, so before `connect` it read as
//! an open connection with nothing to say (`recv` blocked or said
//! `EAGAIN`, `send` queued bytes nobody would carry) and a listener's
//! doorbell byte could be read by the program. One unconnected `AF_UNIX`
//! stream socket, kept as the same open file through its whole life, shows
//! the kernel's own states instead (measured on 6.18, beside Linux TCP):
//!
//! | state | TCP polls / `recv` / `send` | this object polls / `recv` / `send` |
//! |---|---|---|
//! | fresh | `OUT HUP` / `ENOTCONN` / `EPIPE` | `OUT HUP` / `EINVAL` / `ENOTCONN` |
//! | listening, queue empty | nothing / `ENOTCONN` / `EPIPE` | nothing / `EINVAL` / `ENOTCONN` |
//! | listening, a connection waits | `IN` | `IN` |
//!
//! The errnos differ (`unix_stream_recvmsg` says `EINVAL` before a
//! connection; CPython's `ssl` takes either), readiness does not. A kernel
//! TCP socket would give the exact errnos but must be replaced by a bridge
//! at `connect` (`ADDFD` over the fd): that loses every `epoll` registration
//! and `dup` made before — nginx registers an upstream socket before it
//! connects it. This object is never replaced: the supervisor connects or
//! listens on its own duplicate of it, which is the same socket.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::fstat;
use rustix::io::Errno;
use rustix::net::{
    accept_with, connect_unix, listen, socket_with, sockopt, AddressFamily, SocketAddrUnix, SocketFlags, SocketType,
};

use crate::bridge::{set_buffers, Bridge};

/// A fresh TCP socket's object: an unconnected `AF_UNIX` stream socket,
/// `O_CLOEXEC` in the supervisor, `O_NONBLOCK` if asked, with the bridge's
/// stream buffers. Returns it and its inode (its identity).
pub fn unconnected(nonblocking: bool) -> io::Result<(OwnedFd, u64)> {
    let mut flags = SocketFlags::CLOEXEC;
    if nonblocking {
        flags |= SocketFlags::NONBLOCK;
    }
    let fd = socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None)?;
    set_buffers(fd.as_fd());
    let ino = fstat(&fd)?.st_ino;
    Ok((fd, ino))
}

/// Unique abstract names for this process's listening sockets.
#[derive(Debug)]
struct Names {
    prefix: String,
    next: u64,
}

impl Names {
    fn next(&mut self) -> io::Result<SocketAddrUnix> {
        self.next += 1;
        let name = format!("{}-{}", self.prefix, self.next);
        Ok(SocketAddrUnix::new_abstract_name(name.as_bytes())?)
    }
}

/// Binds `fd` to a fresh abstract name; a name somebody else took is
/// skipped.
fn bind_fresh(fd: BorrowedFd<'_>, names: &mut Names) -> io::Result<SocketAddrUnix> {
    for _ in 0..64 {
        let name = names.next()?;
        match rustix::net::bind_unix(fd, &name) {
            Ok(()) => return Ok(name),
            Err(Errno::ADDRINUSE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Errno::ADDRINUSE.into())
}

/// The listening socket a shard connects programs' sockets to: their
/// `connect` becomes a `connect` of the program's own object to the hub,
/// and what the hub accepts is the supervisor's end of the bridge. Bound to
/// an abstract name of the supervisor's network namespace; a connection
/// from anybody else is told apart by its peer credentials and dropped.
#[derive(Debug)]
pub struct Hub {
    fd: OwnedFd,
    name: SocketAddrUnix,
    names: Names,
    pid: u32,
}

impl Hub {
    /// A hub for this thread's bridges (one per shard: a hub must not be
    /// shared by threads connecting at once).
    pub fn new() -> io::Result<Hub> {
        let pid = std::process::id();
        let tid = rustix::thread::gettid().as_raw_nonzero().get();
        let mut names = Names {
            prefix: format!("joyride-{pid}-{tid}"),
            next: 0,
        };
        let fd = socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        let name = bind_fresh(fd.as_fd(), &mut names)?;
        listen(&fd, 4096)?;
        Ok(Hub { fd, name, names, pid })
    }

    /// Connects the program's object `target` (a duplicate of it) to the
    /// hub and returns the bridge whose other end it now is. `target` is
    /// then a connected stream socket, the same open file the program holds:
    /// its `epoll` registrations and duplicates follow.
    pub fn attach(&mut self, target: BorrowedFd<'_>) -> io::Result<Bridge> {
        let ino = fstat(target)?.st_ino;
        // The program's O_NONBLOCK is on this file too: a full backlog
        // would say EAGAIN, but the hub is drained at once, so it has room.
        connect_unix(target, &self.name)?;
        loop {
            let ours = match accept_with(&self.fd, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK) {
                Ok(fd) => fd,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            // Only this thread connects here on behalf of this process; a
            // connection from another process is a stranger's.
            let ucred = sockopt::get_socket_peercred(&ours)?;
            if ucred.pid.as_raw_nonzero().get() as u32 != self.pid {
                continue;
            }
            return Bridge::adopt_stream(ours, ino);
        }
    }

    /// Makes the program's fresh object `target` (a duplicate of it) a
    /// listening socket, bound to a fresh abstract name for the doorbell.
    /// Once: the stack keeps the program's backlog; this one only ever
    /// holds doorbells.
    pub fn lobby(&mut self, target: BorrowedFd<'_>) -> io::Result<Lobby> {
        let name = bind_fresh(target, &mut self.names)?;
        listen(target, 64)?;
        Ok(Lobby { name, rung: 0 })
    }

    /// Whether the `AF_UNIX` socket with inode `ino` still exists in this
    /// thread's network namespace (some process still holds it): `None` if
    /// the kernel cannot say. One `UNIX_DIAG` round trip (see
    /// `Bridge::peer`). A fresh or listening object has no bridge whose
    /// hang-up would tell that the program closed it; this does.
    pub fn exists(&self, ino: u64) -> Option<bool> {
        let ours = fstat(&self.fd).ok()?.st_ino;
        crate::diag::target_exists(ino, ours)
    }
}

/// A listening TCP socket's object: the program's own socket, listening on
/// an abstract name. It polls readable while a doorbell connection waits
/// in its queue, as a TCP listener does while a connection waits.
#[derive(Debug)]
pub struct Lobby {
    name: SocketAddrUnix,
    rung: usize,
}

impl Lobby {
    /// One more pending connection: a doorbell connection queued at the
    /// listener (connected, then closed by us; it stays queued until
    /// [`unring`](Self::unring) accepts it).
    pub fn ring(&mut self) -> io::Result<()> {
        let bell = socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        connect_unix(&bell, &self.name)?;
        self.rung += 1;
        Ok(())
    }

    /// At `accept`: takes one doorbell connection off the listener
    /// (`target` is a duplicate of it). `Ok(false)` if none was there (the
    /// count is then reset to 0). A stranger's connection to the name
    /// counts as a doorbell: it only made the listener look readable.
    pub fn unring(&mut self, target: BorrowedFd<'_>) -> io::Result<bool> {
        loop {
            return match accept_with(target, SocketFlags::CLOEXEC | SocketFlags::NONBLOCK) {
                Ok(_bell) => {
                    self.rung = self.rung.saturating_sub(1);
                    Ok(true)
                }
                Err(Errno::AGAIN) => {
                    self.rung = 0;
                    Ok(false)
                }
                Err(Errno::INTR) => continue,
                Err(e) => Err(e.into()),
            };
        }
    }

    /// Doorbells rung and not yet unrung.
    pub fn rung(&self) -> usize {
        self.rung
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::event::{poll, PollFd, PollFlags};
    use rustix::net::{recv, send, RecvFlags, SendFlags};

    fn events(fd: BorrowedFd<'_>) -> PollFlags {
        let mut fds = [PollFd::new(&fd, PollFlags::all())];
        poll(&mut fds, 0).unwrap();
        fds[0].revents()
    }

    /// Before a connection the object polls as a fresh TCP socket does and
    /// refuses data both ways at once.
    #[test]
    fn fresh_object_shows_no_connection() {
        let (fd, _) = unconnected(true).unwrap();
        let ev = events(fd.as_fd());
        assert!(ev.contains(PollFlags::OUT | PollFlags::HUP), "{ev:?}");
        assert!(!ev.contains(PollFlags::IN));
        let mut b = [0u8; 1];
        assert_eq!(recv(&fd, &mut b, RecvFlags::empty()), Err(Errno::INVAL));
        assert_eq!(send(&fd, b"x", SendFlags::NOSIGNAL), Err(Errno::NOTCONN));
    }

    /// Attached, the program's object carries bytes both ways with the
    /// supervisor's end, and is the same socket as before.
    #[test]
    fn attach_connects_the_same_socket() {
        let mut hub = Hub::new().unwrap();
        let (fd, ino) = unconnected(false).unwrap();
        let dup = rustix::io::dup(&fd).unwrap();
        let mut bridge = hub.attach(dup.as_fd()).unwrap();
        drop(dup);
        assert_eq!(bridge.ino(), ino);
        send(&fd, b"hello", SendFlags::empty()).unwrap();
        let mut buf = [0u8; 16];
        let n = loop {
            match bridge.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"hello");
        bridge.write(b"back").unwrap();
        let n = recv(&fd, &mut buf, RecvFlags::empty()).unwrap();
        assert_eq!(&buf[..n], b"back");
        drop(fd);
        assert!(matches!(bridge.peer().unwrap(), crate::Peer::Closed));
    }

    /// A listening object is readable exactly while a doorbell waits, and
    /// still refuses data.
    #[test]
    fn lobby_rings_and_unrings() {
        let mut hub = Hub::new().unwrap();
        let (fd, ino) = unconnected(true).unwrap();
        let mut lobby = hub.lobby(fd.as_fd()).unwrap();
        assert!(!events(fd.as_fd()).contains(PollFlags::IN));
        lobby.ring().unwrap();
        assert!(events(fd.as_fd()).contains(PollFlags::IN));
        let mut b = [0u8; 1];
        assert_eq!(recv(&fd, &mut b, RecvFlags::empty()), Err(Errno::INVAL));
        assert!(lobby.unring(fd.as_fd()).unwrap());
        assert!(!events(fd.as_fd()).contains(PollFlags::IN));
        assert!(!lobby.unring(fd.as_fd()).unwrap());
        assert_eq!(hub.exists(ino), Some(true));
        drop(fd);
        assert_eq!(hub.exists(ino), Some(false));
    }
}
