//! Whether an `AF_UNIX` socket still exists, by inode: one `UNIX_DIAG`
//! request over `NETLINK_SOCK_DIAG` (net/unix/diag.c
//! `unix_diag_get_exact`, which finds the socket with `unix_lookup_by_ino`
//! in the caller's network namespace; a socket leaves that table in
//! `unix_release_sock`, when the last reference to its file is closed).
//!
//! Used only where poll on our end cannot tell a target that shut its end
//! down both ways from one that closed it (see `Bridge::peer`).

use std::io;
use std::os::fd::OwnedFd;

use rustix::io::Errno;
use rustix::net::{netlink, recv, send, socket_with, AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// `SOCK_DIAG_BY_FAMILY` (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLMSG_ERROR` (linux/netlink.h).
const NLMSG_ERROR: u16 = 2;
/// `NLM_F_REQUEST`.
const NLM_F_REQUEST: u16 = 1;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct unix_diag_req)`.
const UNIX_DIAG_REQ_LEN: usize = 24;

/// Looks up unix sockets by inode. One netlink socket, opened per use.
pub(crate) struct UnixDiag {
    fd: OwnedFd,
    seq: u32,
}

impl UnixDiag {
    /// Opens a `NETLINK_SOCK_DIAG` socket.
    pub(crate) fn open() -> io::Result<Self> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )?;
        Ok(UnixDiag { fd, seq: 0 })
    }

    /// Whether the unix socket with inode `ino` exists (in this network
    /// namespace). `Err` when the kernel cannot answer (for instance
    /// without `CONFIG_UNIX_DIAG`, which also looks like `ENOENT`: callers
    /// check a socket known to exist first).
    pub(crate) fn exists(&mut self, ino: u64) -> io::Result<bool> {
        let ino32 = u32::try_from(ino).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        self.seq = self.seq.wrapping_add(1);
        let mut req = [0u8; NLMSG_HDRLEN + UNIX_DIAG_REQ_LEN];
        // struct nlmsghdr
        req[0..4].copy_from_slice(&((NLMSG_HDRLEN + UNIX_DIAG_REQ_LEN) as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        // nlmsg_pid 0: the kernel.
        // struct unix_diag_req
        let r = NLMSG_HDRLEN;
        req[r] = libc::AF_UNIX as u8; // sdiag_family
                                      // sdiag_protocol 0, pad, udiag_states 0 (ignored by an exact lookup)
        req[r + 8..r + 12].copy_from_slice(&ino32.to_ne_bytes()); // udiag_ino
                                                                  // udiag_show 0; udiag_cookie = INET_DIAG_NOCOOKIE: no cookie check.
        req[r + 16..r + 24].copy_from_slice(&[0xff; 8]);
        send(&self.fd, &req, SendFlags::empty())?;
        let mut buf = [0u8; 4096];
        loop {
            let n = match recv(&self.fd, &mut buf, RecvFlags::empty()) {
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let msg = &buf[..n];
            if msg.len() < NLMSG_HDRLEN + 4 {
                return Err(io::Error::from(io::ErrorKind::InvalidData));
            }
            let ty = u16::from_ne_bytes([msg[4], msg[5]]);
            let seq = u32::from_ne_bytes([msg[8], msg[9], msg[10], msg[11]]);
            if seq != self.seq {
                continue; // A stale answer.
            }
            return match ty {
                NLMSG_ERROR => {
                    let err = i32::from_ne_bytes([msg[16], msg[17], msg[18], msg[19]]);
                    match -err {
                        0 => Ok(true),
                        libc::ENOENT => Ok(false),
                        e => Err(io::Error::from_raw_os_error(e)),
                    }
                }
                // struct unix_diag_msg: family, type, state, pad, ino.
                SOCK_DIAG_BY_FAMILY if msg.len() >= NLMSG_HDRLEN + 8 => {
                    let r = NLMSG_HDRLEN + 4;
                    Ok(u32::from_ne_bytes([msg[r], msg[r + 1], msg[r + 2], msg[r + 3]]) == ino32)
                }
                _ => Err(io::Error::from(io::ErrorKind::InvalidData)),
            };
        }
    }
}

/// Whether the target's end (`target_ino`) still exists: `None` if the
/// kernel cannot say (our own end, `our_ino`, is not found either, or the
/// request fails).
///
/// The netlink socket is kept per thread: a lookup walks the namespace's
/// whole unix socket table under its bucket locks, and closing many
/// connections a second asked twice each with a new socket (the engine
/// spent an eighth of its time there). Once our own end was found through
/// it, the socket is known to answer for this namespace and the
/// `our_ino` check is skipped; bridges are made in the thread's namespace.
pub(crate) fn target_exists(target_ino: u64, our_ino: u64) -> Option<bool> {
    thread_local! {
        static DIAG: std::cell::RefCell<Option<(UnixDiag, bool)>> = const { std::cell::RefCell::new(None) };
    }
    DIAG.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some((UnixDiag::open().ok()?, false));
        }
        let (diag, verified) = slot.as_mut()?;
        let answer = (|| {
            if !*verified {
                if !diag.exists(our_ino).ok()? {
                    return None;
                }
                *verified = true;
            }
            diag.exists(target_ino).ok()
        })();
        if answer.is_none() {
            // Start afresh next time (a failed socket, or a kernel that
            // cannot answer).
            *slot = None;
        }
        answer
    })
}
