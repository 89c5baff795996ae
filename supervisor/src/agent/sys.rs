//! The few calls of the agent machinery that `rustix` does not wrap safely:
//! placing fds at known numbers in a spawned child, `setfsuid`/`setfsgid`,
//! and closing every fd past the ones an agent was given.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The first fd number [`place_fds`] fills.
pub const FIRST_FD: RawFd = 3;

/// Arranges for `fds[i]` to be fd `FIRST_FD + i` in the child `cmd` starts,
/// and for no other fd of ours to reach it (every other fd the supervisor
/// holds is close-on-exec). Returns the duplicates that must stay open until
/// the child has been spawned.
pub fn place_fds(cmd: &mut Command, fds: &[BorrowedFd<'_>]) -> io::Result<Vec<OwnedFd>> {
    // Duplicates above every target number first, so that no dup2 in the
    // child overwrites a source still to be placed.
    let floor = FIRST_FD + fds.len() as RawFd + 64;
    let high: Vec<OwnedFd> = fds
        .iter()
        .map(|fd| rustix::io::fcntl_dupfd_cloexec(fd, floor).map_err(io::Error::from))
        .collect::<io::Result<_>>()?;
    let raw: Vec<RawFd> = high.iter().map(AsRawFd::as_raw_fd).collect();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // dup2, which is async-signal-safe; it allocates nothing (`raw` was built
    // before the fork and is only read).
    unsafe {
        cmd.pre_exec(move || {
            for (i, &src) in raw.iter().enumerate() {
                // dup2 clears FD_CLOEXEC on the new number only.
                if libc::dup2(src, FIRST_FD + i as RawFd) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(high)
}

/// Closes every fd from `first` up (`close_range(2)`).
pub fn close_from(first: RawFd) -> io::Result<()> {
    // SAFETY: close_range takes integers only. The caller (the agent's entry,
    // before it opens anything) owns no Rust object holding these fds.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first as libc::c_uint, libc::c_uint::MAX, 0u32) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the filesystem uid and checks that it took (`setfsuid(2)` reports no
/// error; it returns the previous value, so a second call reads the new one).
pub fn set_fs_uid(uid: u32) -> io::Result<()> {
    // SAFETY: integer argument only.
    unsafe { libc::setfsuid(uid) };
    // SAFETY: an invalid id (-1) changes nothing and returns the current one.
    let now = unsafe { libc::setfsuid(u32::MAX) } as u32;
    if now != uid {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    Ok(())
}

/// Sets the filesystem gid and checks that it took (see [`set_fs_uid`]).
pub fn set_fs_gid(gid: u32) -> io::Result<()> {
    // SAFETY: integer argument only.
    unsafe { libc::setfsgid(gid) };
    // SAFETY: an invalid id (-1) changes nothing and returns the current one.
    let now = unsafe { libc::setfsgid(u32::MAX) } as u32;
    if now != gid {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    Ok(())
}

/// Takes ownership of fd `n`, which the process was started with (see
/// [`place_fds`]); `EBADF` if it is not open.
///
/// Call it once per number, at the agent's start, before anything else could
/// have opened or closed an fd.
pub fn take_inherited_fd(n: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD on a number touches no memory; it tells whether `n` is open.
    if unsafe { libc::fcntl(n, libc::F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `n` is open, was placed for us by the parent before exec, and
    // nothing else in this process owns it (the caller takes each number once).
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(n) })
}

fn cvt(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `setgroups(2)`.
pub fn set_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: `groups` is a live slice of `gid_t` (u32) of the stated length;
    // the kernel only reads it.
    cvt(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })
}

/// `setresuid(2)`.
pub fn set_res_uid(real: u32, effective: u32, saved: u32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::setresuid(real, effective, saved) })
}

/// `setresgid(2)`.
pub fn set_res_gid(real: u32, effective: u32, saved: u32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::setresgid(real, effective, saved) })
}
