//! [`Direct`]: the supervisor acting itself, for a caller whose power is its
//! own. Only the places differ: the network namespace new sockets are made
//! in, the directory relative `AF_UNIX` paths start from, and the umask.
//! These are per-thread state of the calling (engine) thread, which has its
//! own fs context (`unshare(CLONE_FS)` in `Ctx::new`), so switching them
//! moves no other thread.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use super::{Act, OptVal, Received, StillThere};
use crate::cred::FileId;
use crate::sys;

/// Where the supervisor's engine thread itself stands: what [`Direct`]
/// returns to after acting somewhere else.
pub struct Own {
    netns: OwnedFd,
    netns_id: FileId,
    cwd: OwnedFd,
}

impl Own {
    /// The calling thread's network namespace and working directory.
    pub fn of_this_thread() -> io::Result<Own> {
        let netns: OwnedFd = std::fs::File::open("/proc/thread-self/ns/net")?.into();
        let netns_id = sys::file_id(netns.as_fd())?;
        let cwd = rustix::fs::open(
            ".",
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        Ok(Own { netns, netns_id, cwd })
    }

    /// A place made of a network namespace and a directory to return to
    /// (an agent's, whose `/proc` may not be visible in its root).
    pub fn new(netns: OwnedFd, cwd: OwnedFd) -> io::Result<Own> {
        let netns_id = sys::file_id(netns.as_fd())?;
        Ok(Own { netns, netns_id, cwd })
    }

    /// Runs `f` in the network namespace `ns`, then returns to ours.
    pub fn in_netns<T>(&self, ns: BorrowedFd<'_>, f: impl FnOnce() -> T) -> Result<T, i32> {
        move_into_link_name_space(ns, Some(LinkNameSpaceType::Network)).map_err(|e| {
            tracing::warn!(error = %e, "cannot enter the target's network namespace");
            e.raw_os_error()
        })?;
        let out = f();
        if let Err(e) = move_into_link_name_space(self.netns.as_fd(), Some(LinkNameSpaceType::Network)) {
            // Staying in the target's namespace would serve every later call
            // from the wrong network: stop rather than do that.
            tracing::error!(error = %e, "cannot return to the supervisor's network namespace");
            std::process::abort();
        }
        Ok(out)
    }

    /// Runs `f` with working directory `cwd` (when given), then returns to ours.
    pub fn in_dir<T>(&self, cwd: Option<BorrowedFd<'_>>, f: impl FnOnce() -> T) -> Result<T, i32> {
        let Some(cwd) = cwd else { return Ok(f()) };
        rustix::process::fchdir(cwd).map_err(|e| e.raw_os_error())?;
        let out = f();
        if let Err(e) = rustix::process::fchdir(&self.cwd) {
            tracing::error!(error = %e, "cannot return to the supervisor's working directory");
            std::process::abort();
        }
        Ok(out)
    }
}

/// The network namespace of the thread a [`Direct`] acts for.
pub struct TargetNetns<'a> {
    /// The thread.
    pub tid: u32,
    /// Its namespace as its credentials were read.
    pub id: FileId,
    /// Whether the thread's trapped call is still pending (`ID_VALID`): then
    /// `tid` still names it.
    pub valid: &'a dyn StillThere,
}

/// The supervisor performing a call itself (see the module doc).
pub struct Direct<'a> {
    own: &'a Own,
    target: Option<TargetNetns<'a>>,
}

impl<'a> Direct<'a> {
    /// Acting for a thread in network namespace `target` (`None`: ours).
    pub fn new(own: &'a Own, target: Option<TargetNetns<'a>>) -> Direct<'a> {
        Direct { own, target }
    }

    /// Runs `f` in the target's network namespace.
    fn in_target_netns<T>(&self, f: impl FnOnce() -> io::Result<T>) -> Result<T, i32> {
        let t = match &self.target {
            Some(t) if t.id != self.own.netns_id => t,
            _ => return f().map_err(errno),
        };
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", t.tid)).map_err(|_| libc::ESRCH)?;
        // Opened for the right thread, and still the namespace it was judged in.
        if !t.valid.still_there() || sys::file_id(ns.as_fd()).ok() != Some(t.id) {
            return Err(libc::ESRCH);
        }
        self.own.in_netns(ns.as_fd(), f)?.map_err(errno)
    }
}

fn errno(e: io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Act for Direct<'_> {
    fn socket(&mut self, domain: i32, ty: i32, protocol: i32) -> Result<OwnedFd, i32> {
        self.in_target_netns(|| sys::socket(domain, ty, protocol))
    }

    fn socketpair(&mut self, domain: i32, ty: i32, protocol: i32) -> Result<(OwnedFd, OwnedFd), i32> {
        self.in_target_netns(|| sys::socketpair(domain, ty, protocol))
    }

    fn bind(&mut self, fd: BorrowedFd<'_>, addr: &[u8], cwd: Option<BorrowedFd<'_>>, umask: u32) -> Result<(), i32> {
        if !super::unix_path(addr) {
            return sys::bind(fd, addr).map_err(errno);
        }
        use rustix::fs::Mode;
        let mask = Mode::from_bits_truncate(umask & 0o777);
        let before = rustix::process::umask(mask);
        let out = self.own.in_dir(cwd, || sys::bind(fd, addr));
        rustix::process::umask(before);
        out?.map_err(errno)
    }

    fn connect(&mut self, fd: BorrowedFd<'_>, addr: &[u8], cwd: Option<BorrowedFd<'_>>) -> Result<(), i32> {
        self.own.in_dir(cwd, || sys::connect(fd, addr))?.map_err(errno)
    }

    fn listen(&mut self, fd: BorrowedFd<'_>, backlog: i32) -> Result<(), i32> {
        sys::listen(fd, backlog).map_err(errno)
    }

    fn shutdown(&mut self, fd: BorrowedFd<'_>, how: i32) -> Result<(), i32> {
        sys::shutdown(fd, how).map_err(errno)
    }

    fn getsockopt(&mut self, fd: BorrowedFd<'_>, level: i32, name: i32, buf: &mut [u8]) -> Result<u32, i32> {
        sys::getsockopt(fd, level, name, buf).map_err(errno)
    }

    fn setsockopt(&mut self, fd: BorrowedFd<'_>, level: i32, name: i32, val: &OptVal<'_>) -> Result<(), i32> {
        let bytes = val.bytes_with(None)?;
        sys::setsockopt(fd, level, name, &bytes).map_err(errno)
    }

    fn accept4(&mut self, fd: BorrowedFd<'_>, flags: i32) -> Result<(OwnedFd, Vec<u8>, u32), i32> {
        sys::accept4(fd, flags).map_err(errno)
    }

    fn sendmsg(
        &mut self,
        fd: BorrowedFd<'_>,
        name: Option<&[u8]>,
        data: &[u8],
        control: &[u8],
        flags: i32,
        cwd: Option<BorrowedFd<'_>>,
    ) -> Result<usize, i32> {
        self.own
            .in_dir(cwd, || sys::sendmsg(fd, name, &[data], control, flags))?
            .map_err(errno)
    }

    fn recvmsg(&mut self, fd: BorrowedFd<'_>, buf: &mut [u8], control_cap: usize, flags: i32) -> Result<Received, i32> {
        sys::recvmsg(fd, buf, control_cap, flags).map_err(errno)
    }
}
