//! The NIC's doorbell: a wake-up for the engine when a frame arrives while
//! it sleeps.
//!
//! DPDK's `net_af_packet` port has no receive interrupt, so an engine that
//! sleeps in `epoll_wait` would not see a frame until its next timer. The
//! doorbell is a second `AF_PACKET` socket (`SOCK_RAW`, `ETH_P_ALL`) bound
//! to the port's kernel interface and watched by the engine's epoll set
//! (edge-triggered). Its classic BPF filter keeps one byte of each frame,
//! and its receive buffer is the smallest the kernel allows (a few frames).
//!
//! - *disarmed* (the engine polls the NIC anyway): the socket is left full.
//!   The kernel checks the receive buffer before it clones a frame for a
//!   packet socket (`packet_rcv`), so a full doorbell costs one filter run
//!   and a counter per frame, and no wake-up.
//! - *armed* (the engine is about to sleep): [`Doorbell::arm`] empties it.
//!   The next frame is queued and makes the socket readable: the engine
//!   wakes.
//!
//! Switching costs no system call but the `recv`s that empty the socket; no
//! filter is swapped (attaching one compiles it, about 5 µs here).
//!
//! Going to sleep is: arm, poll the NIC once more, then `epoll_wait`. Why
//! that second poll is enough: the kernel hands a received frame to the
//! packet sockets of its device one after the other, newest socket first
//! (`dev_add_pack` adds at the head of `dev->ptype_all`). The doorbell is
//! bound *before* the port opens its socket, so the port's ring has every
//! frame before the doorbell sees it. A frame the doorbell dropped (full) or
//! that [`Doorbell::arm`] consumed was in the ring by the end of `arm`, and
//! the poll after it finds it; any later frame rings.
//! Frames the interface sends are ignored (`PACKET_IGNORE_OUTGOING`).
//!
//! The order is the kernel's, not a promise: if the interface goes down and
//! up while both sockets are bound, the kernel registers them again and the
//! doorbell may end up first. A frame racing an arm could then wait for the
//! engine's backstop timeout; `--stats` counts such sleeps as
//! `engine_doorbell_missed`.
//!
//! A `net_af_xdp` port has no receive interrupt either (DPDK 22.11), but
//! its `AF_XDP` socket is a doorbell by itself: the kernel wakes the
//! socket's waiters whenever it puts frames in the receive ring, and `poll`
//! reports it readable while the ring holds frames. [`Doorbell::xsk`] finds
//! that socket among the process's descriptors (DPDK does not hand it out)
//! and watches a duplicate of it; arming it costs nothing. Going to sleep
//! is the same: poll the NIC once more (a frame that came before is found),
//! then `epoll_wait` (one that comes after wakes it).
//!
//! The only module of `exec` with `unsafe`: the `AF_PACKET` address, the
//! filter program, `recv` and the descriptor scan are raw libc calls.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// "Keep one byte of every frame": enough to make the socket readable.
const KEEP_ONE: [libc::sock_filter; 1] = [ret(1)];
/// Asked-for receive buffer: the kernel raises it to its minimum (about
/// 2 KiB), which a few frames fill.
const RCVBUF: i32 = 1;

/// `BPF_RET | BPF_K` returning `k`.
const fn ret(k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

/// A socket that becomes readable when a frame arrives on the NIC after
/// [`Doorbell::arm`].
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
    kind: Kind,
}

/// What rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A packet socket of our own on the port's interface.
    Packet,
    /// The `net_af_xdp` port's own `AF_XDP` socket (a duplicate).
    Xsk,
}

/// `AF_XDP` (linux/socket.h; not in every libc crate).
const AF_XDP: i32 = 44;

impl Doorbell {
    /// A doorbell on interface `ifname`. Open it before the DPDK port on the
    /// same interface (see the module doc).
    pub fn open(ifname: &str) -> io::Result<Doorbell> {
        let index = ifindex(ifname)?;
        // Protocol 0: the socket receives nothing until bound, so no frame
        // of another interface queues before the filter is on.
        let fd = crate::sys::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )?;
        let bell = Doorbell { fd, kind: Kind::Packet };
        bell.set_filter(&KEEP_ONE)?;
        bell.set_int(libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)?;
        bell.set_int(libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF)?;
        // SAFETY: `sockaddr_ll` is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = index;
        // SAFETY: `sll` is a live `sockaddr_ll` and the length is its size.
        let r = unsafe {
            libc::bind(
                bell.fd.as_raw_fd(),
                std::ptr::addr_of!(sll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(bell)
    }

    /// The `AF_XDP` sockets open in this process, to tell a port's own from
    /// them once it started ([`Doorbell::xsk`]).
    pub fn xsk_fds() -> Vec<i32> {
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return Vec::new();
        };
        dir.filter_map(|e| e.ok()?.file_name().to_string_lossy().parse::<i32>().ok())
            .filter(|&n| socket_domain(n) == Some(AF_XDP))
            .collect()
    }

    /// The doorbells of a `net_af_xdp` port with `queues` queues, started
    /// since `before` was taken with [`Doorbell::xsk_fds`]: the `AF_XDP`
    /// sockets that are new, by queue. The port opens them queue after
    /// queue while nothing else opens files, so their numbers ascend with
    /// the queues. Fails unless exactly `queues` are new.
    pub fn xsk(before: &[i32], queues: usize) -> io::Result<Vec<Doorbell>> {
        let mut found: Vec<i32> = Self::xsk_fds().into_iter().filter(|n| !before.contains(n)).collect();
        found.sort_unstable();
        if found.len() != queues {
            return Err(io::Error::other(format!(
                "the port opened {} AF_XDP sockets for {queues} queues",
                found.len()
            )));
        }
        found.into_iter().map(Self::xsk_dup).collect()
    }

    fn xsk_dup(n: i32) -> io::Result<Doorbell> {
        // SAFETY: fcntl on a descriptor number; if it was closed since the
        // scan, it fails with EBADF and nothing is created.
        let dup = unsafe { libc::fcntl(n, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing
        // else owns.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dup) };
        // The number could have been closed and reused between the scan
        // and the dup: check what we hold.
        if socket_domain(fd.as_raw_fd()) != Some(AF_XDP) {
            return Err(io::Error::other("the AF_XDP socket went away while it was being found"));
        }
        Ok(Doorbell { fd, kind: Kind::Xsk })
    }

    /// Empties the socket: the next frame makes it readable. Returns how
    /// many frames it held. (An `AF_XDP` doorbell needs nothing: the port's
    /// next poll empties its ring.)
    pub fn arm(&self) -> u64 {
        if self.kind == Kind::Xsk {
            return 0;
        }
        let mut n = 0;
        let mut byte = 0u8;
        loop {
            // SAFETY: `byte` is a live one-byte buffer; MSG_TRUNC only
            // changes the returned length, not what is written.
            let r = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    std::ptr::addr_of_mut!(byte).cast(),
                    1,
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if r < 0 {
                // EAGAIN: empty. Anything else (ENETDOWN after the
                // interface went away) leaves nothing to empty either.
                return n;
            }
            n += 1;
        }
    }

    fn set_filter(&self, prog: &[libc::sock_filter]) -> io::Result<()> {
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr().cast_mut(),
        };
        // SAFETY: `fprog` points at `prog`, alive for the call; the kernel
        // copies the program and never writes through the pointer.
        let r = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                std::ptr::addr_of!(fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn set_int(&self, level: i32, name: i32, val: i32) -> io::Result<()> {
        crate::sys::setsockopt(self.fd.as_fd(), level, name, &val.to_ne_bytes())
    }
}

impl AsFd for Doorbell {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The address family of socket `fd` (`SO_DOMAIN`), or `None` if it is
/// not a socket (or not open).
fn socket_domain(fd: i32) -> Option<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `v` and `len` are live and sized for an int; a descriptor
    // that is not an open socket only makes the call fail.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            std::ptr::addr_of_mut!(v).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(v)
}

/// The index of interface `name`.
fn ifindex(name: &str) -> io::Result<i32> {
    let c = std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c` is a live NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames on loopback ring an armed doorbell; a disarmed (full) one
    /// keeps no more than a few.
    #[test]
    fn rings_only_when_armed() {
        let Ok(bell) = Doorbell::open("lo") else {
            // Needs CAP_NET_RAW.
            return;
        };
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = udp.local_addr().unwrap();
        assert!(!crate::sys::readable_now(bell.as_fd()));
        bell.arm();
        udp.send_to(b"x", to).unwrap();
        assert!(crate::sys::readable_now(bell.as_fd()));
        for _ in 0..100 {
            udp.send_to(b"x", to).unwrap();
        }
        let held = bell.arm();
        assert!((1..=8).contains(&held), "held {held}");
        assert!(!crate::sys::readable_now(bell.as_fd()));
    }
}
