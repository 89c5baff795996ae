//! Acting with a target's power.
//!
//! Where the supervisor performs a socket call for a program (`joyride trace`
//! and the kernel-served sockets of `joyride exec`), the kernel must judge it
//! as it would judge the program: its uid, gid, groups and capabilities in
//! its user namespace, its mount namespace and root for path names, its
//! network namespace for new sockets, its working directory and umask
//! (`SECURITY.md`, the privilege rule). [`Act`] is the set of calls an actor
//! performs; two actors implement it:
//!
//! - [`Direct`]: the supervisor itself, when the caller's power is the
//!   supervisor's own ([`Creds::same_power`]). New sockets are made in the
//!   caller's network namespace, relative `AF_UNIX` paths resolved in its
//!   working directory, `bind` done under its umask. The common case, and
//!   the only one that costs no more than the call itself.
//! - [`Agent`]: a helper process that holds exactly the caller's power, one
//!   per distinct power, kept in a bounded [`Pool`]. The supervisor starts it
//!   by executing its own binary (`joyride __agent`, see [`server`]), it
//!   adopts the credentials and namespaces and checks that it holds them,
//!   and then serves requests over a `SOCK_SEQPACKET` pair ([`wire`]), the
//!   fds it works on passed with `SCM_RIGHTS`. Its replies are untrusted: a
//!   program may kill, stop or otherwise upset an agent that shares its uid,
//!   and then gets `EIO` for its call (see [`client`]) and a fresh agent next
//!   time.
//!
//! This module decides nothing about which calls need an actor; that is the
//! caller's (`crate::kernel`). It never reads target memory.

mod chan;
mod client;
mod direct;
pub mod server;
mod sys;
pub mod wire;

#[cfg(test)]
mod tests;

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

pub use client::{Pool, StillThere};
pub use direct::{Direct, Own, TargetNetns};

pub use crate::sys::Received;

/// A `setsockopt` value, with what must be rewritten for the actor: the
/// program's value may hold a pointer into the program's memory or an fd
/// number of the program's, which mean nothing in the actor.
#[derive(Debug, Clone, Copy)]
pub enum OptVal<'a> {
    /// Passed as given.
    Bytes(&'a [u8]),
    /// A `struct sock_fprog` as the program wrote it, and a copy of the
    /// filter its pointer names; the actor points it at its own copy.
    Filter {
        /// `struct sock_fprog` bytes.
        fprog: &'a [u8],
        /// `len * 8` bytes of `struct sock_filter`.
        prog: &'a [u8],
    },
    /// A value whose first `int` is an fd (a BPF program): the actor puts
    /// its own number for `fd` there.
    Fd {
        /// The value as the program wrote it.
        val: &'a [u8],
        /// The supervisor's duplicate of the program's fd.
        fd: BorrowedFd<'a>,
    },
}

impl OptVal<'_> {
    /// The bytes to hand to `setsockopt(2)` in this process, given `fd` as
    /// this process's number for [`OptVal::Fd`]'s file. For
    /// [`OptVal::Filter`] they point into `prog`, which must outlive the call.
    pub fn bytes_with(&self, fd: Option<BorrowedFd<'_>>) -> Result<Vec<u8>, i32> {
        match *self {
            OptVal::Bytes(b) => Ok(b.to_vec()),
            OptVal::Filter { fprog, prog } => {
                if fprog.len() < 16 {
                    return Err(libc::EINVAL);
                }
                let n = u16::from_ne_bytes([fprog[0], fprog[1]]) as usize;
                // The kernel reads n * 8 bytes at the pointer: never past our copy.
                if n == 0 || n * 8 > prog.len() {
                    return Err(libc::EINVAL);
                }
                let mut bytes = fprog.to_vec();
                bytes[8..16].copy_from_slice(&(prog.as_ptr() as u64).to_ne_bytes());
                Ok(bytes)
            }
            OptVal::Fd { val, fd: ours } => {
                if val.len() < 4 {
                    return Err(libc::EINVAL);
                }
                let n = fd.unwrap_or(ours).as_raw_fd();
                let mut bytes = val.to_vec();
                bytes[..4].copy_from_slice(&n.to_ne_bytes());
                Ok(bytes)
            }
        }
    }
}

/// The socket calls a supervisor performs for a program, each as the
/// program's own call would be judged. Arguments are the supervisor's copy
/// of the program's bytes and the supervisor's duplicates of its fds; errors
/// are errnos, as the program is to see them.
pub trait Act {
    /// `socket(2)` in the program's network namespace.
    fn socket(&mut self, domain: i32, ty: i32, protocol: i32) -> Result<OwnedFd, i32>;

    /// `socketpair(2)` in the program's network namespace.
    fn socketpair(&mut self, domain: i32, ty: i32, protocol: i32) -> Result<(OwnedFd, OwnedFd), i32>;

    /// `bind(2)`; a relative `AF_UNIX` path is resolved in `cwd`, and a
    /// socket file is created under `umask`.
    fn bind(&mut self, fd: BorrowedFd<'_>, addr: &[u8], cwd: Option<BorrowedFd<'_>>, umask: u32) -> Result<(), i32>;

    /// `connect(2)`; a relative `AF_UNIX` path is resolved in `cwd`.
    fn connect(&mut self, fd: BorrowedFd<'_>, addr: &[u8], cwd: Option<BorrowedFd<'_>>) -> Result<(), i32>;

    /// `listen(2)`.
    fn listen(&mut self, fd: BorrowedFd<'_>, backlog: i32) -> Result<(), i32>;

    /// `shutdown(2)`.
    fn shutdown(&mut self, fd: BorrowedFd<'_>, how: i32) -> Result<(), i32>;

    /// `getsockopt(2)` into `buf` (which holds the input value, for the
    /// options that read one); the length the kernel reports.
    fn getsockopt(&mut self, fd: BorrowedFd<'_>, level: i32, name: i32, buf: &mut [u8]) -> Result<u32, i32>;

    /// `setsockopt(2)`.
    fn setsockopt(&mut self, fd: BorrowedFd<'_>, level: i32, name: i32, val: &OptVal<'_>) -> Result<(), i32>;

    /// `accept4(2)`: the new socket, the peer address bytes (up to 128) and
    /// the kernel's full length.
    fn accept4(&mut self, fd: BorrowedFd<'_>, flags: i32) -> Result<(OwnedFd, Vec<u8>, u32), i32>;

    /// `sendmsg(2)` of one buffer. `control` is as the kernel lays it out,
    /// `SCM_RIGHTS` naming fds of this process (alive for the call); a
    /// relative `AF_UNIX` destination is resolved in `cwd`.
    fn sendmsg(
        &mut self,
        fd: BorrowedFd<'_>,
        name: Option<&[u8]>,
        data: &[u8],
        control: &[u8],
        flags: i32,
        cwd: Option<BorrowedFd<'_>>,
    ) -> Result<usize, i32>;

    /// `recvmsg(2)` into `buf`; fds received with `SCM_RIGHTS` are in this
    /// process and named in the returned control data (the caller owns them).
    fn recvmsg(&mut self, fd: BorrowedFd<'_>, buf: &mut [u8], control_cap: usize, flags: i32) -> Result<Received, i32>;
}

/// The `int`s of every `SCM_RIGHTS` message in `control`, in order.
fn rights(control: &[u8]) -> Vec<i32> {
    crate::sys::parse_cmsgs(control)
        .into_iter()
        .filter(|(level, ty, _)| *level == libc::SOL_SOCKET && *ty == libc::SCM_RIGHTS)
        .flat_map(|(_, _, data)| {
            data.chunks_exact(4)
                .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `control` with the `SCM_RIGHTS` numbers replaced, in order, by `fds`;
/// `None` unless there are exactly as many numbers as `fds`.
fn with_rights(control: &[u8], fds: &[i32]) -> Option<Vec<u8>> {
    let mut msgs = crate::sys::parse_cmsgs(control);
    let mut next = fds.iter();
    for (level, ty, data) in msgs.iter_mut() {
        if *level == libc::SOL_SOCKET && *ty == libc::SCM_RIGHTS {
            if data.len() % 4 != 0 {
                return None;
            }
            let mut out = Vec::with_capacity(data.len());
            for _ in 0..data.len() / 4 {
                out.extend_from_slice(&next.next()?.to_ne_bytes());
            }
            *data = out;
        }
    }
    if next.next().is_some() {
        return None;
    }
    Some(crate::sys::build_cmsgs(&msgs))
}

/// Is `addr` a relative (non-abstract, non-empty) `AF_UNIX` path?
pub fn relative_unix_path(addr: &[u8]) -> bool {
    addr.len() > 2 && u16::from_ne_bytes([addr[0], addr[1]]) as i32 == libc::AF_UNIX && addr[2] != 0 && addr[2] != b'/'
}

/// Is `addr` an `AF_UNIX` path (not abstract, not unnamed), the one kind of
/// address `bind` creates a file for?
pub fn unix_path(addr: &[u8]) -> bool {
    addr.len() > 2 && u16::from_ne_bytes([addr[0], addr[1]]) as i32 == libc::AF_UNIX && addr[2] != 0
}
