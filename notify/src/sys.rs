//! Raw kernel interfaces: seccomp ioctls, the `seccomp(2)` call, cross-process
//! memory and `fork`. The only module of this crate allowed `unsafe`; every
//! function here has a safe signature or a `# Safety` section.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6, `linux/seccomp.h`).
pub(crate) const SYNC_WAKE_UP: u64 = linux_raw_sys::ptrace::SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP as u64;

/// `PIDFD_THREAD` (Linux 6.9): a pidfd for one thread rather than a process.
pub(crate) const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Sizes of the notification structures as this kernel knows them.
pub(crate) fn notif_sizes() -> io::Result<libc::seccomp_notif_sizes> {
    // SAFETY: all-zero bytes are a valid `seccomp_notif_sizes` (three u16s).
    let mut sizes: libc::seccomp_notif_sizes = unsafe { zeroed() };
    // SAFETY: SECCOMP_GET_NOTIF_SIZES writes exactly one `seccomp_notif_sizes`
    // into the pointer we pass, which points at a live local of that type.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_NOTIF_SIZES,
            0,
            &mut sizes as *mut libc::seccomp_notif_sizes,
        )
    })?;
    Ok(sizes)
}

/// `SECCOMP_IOCTL_NOTIF_RECV` into `buf`, which must be zeroed and at least
/// as large as the kernel's `seccomp_notif` (see [`notif_sizes`]).
pub(crate) fn notif_recv(fd: BorrowedFd<'_>, buf: &mut [u64]) -> io::Result<libc::seccomp_notif> {
    assert!(buf.len() * 8 >= size_of::<libc::seccomp_notif>());
    buf.fill(0);
    // SAFETY: `buf` is a zeroed, writable, 8-byte aligned buffer at least as
    // large as the kernel's `struct seccomp_notif` (the caller sized it from
    // SECCOMP_GET_NOTIF_SIZES); the ioctl writes at most that many bytes.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, buf.as_mut_ptr()) } as libc::c_long)?;
    // SAFETY: the buffer is 8-byte aligned, at least `size_of::<seccomp_notif>()`
    // bytes, and every bit pattern is a valid `seccomp_notif` (plain integers).
    Ok(unsafe { std::ptr::read(buf.as_ptr() as *const libc::seccomp_notif) })
}

/// `SECCOMP_IOCTL_NOTIF_SEND`.
pub(crate) fn notif_send(fd: BorrowedFd<'_>, id: u64, val: i64, error: i32, flags: u32) -> io::Result<()> {
    // SAFETY: all-zero bytes are a valid `seccomp_notif_resp`.
    let mut resp: libc::seccomp_notif_resp = unsafe { zeroed() };
    resp.id = id;
    resp.val = val;
    resp.error = error;
    resp.flags = flags;
    // SAFETY: the ioctl reads one `seccomp_notif_resp` from a live local.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) } as libc::c_long)?;
    Ok(())
}

/// `SECCOMP_IOCTL_NOTIF_ID_VALID`: is notification `id` still pending?
pub(crate) fn notif_id_valid(fd: BorrowedFd<'_>, id: u64) -> io::Result<()> {
    let mut id = id;
    // SAFETY: the ioctl reads one u64 from a live local.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id) } as libc::c_long)?;
    Ok(())
}

/// `SECCOMP_IOCTL_NOTIF_ADDFD`: returns the fd number in the target.
pub(crate) fn notif_addfd(
    fd: BorrowedFd<'_>,
    id: u64,
    src: BorrowedFd<'_>,
    newfd: u32,
    newfd_flags: u32,
    flags: u32,
) -> io::Result<RawFd> {
    let mut addfd = libc::seccomp_notif_addfd {
        id,
        flags,
        srcfd: src.as_raw_fd() as u32,
        newfd,
        newfd_flags,
    };
    // SAFETY: the ioctl reads one `seccomp_notif_addfd` from a live local;
    // `srcfd` is borrowed for the duration of the call.
    let ret = cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &mut addfd) } as libc::c_long)?;
    Ok(ret as RawFd)
}

/// `SECCOMP_IOCTL_NOTIF_SET_FLAGS`.
pub(crate) fn notif_set_flags(fd: BorrowedFd<'_>, flags: u64) -> io::Result<()> {
    // SAFETY: the kernel takes the flags as the ioctl's argument value (not a
    // pointer to them) and touches no memory of ours.
    cvt(unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS,
            flags as libc::c_ulong,
        )
    } as libc::c_long)?;
    Ok(())
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`; returns the listener fd
/// when `flags` has `SECCOMP_FILTER_FLAG_NEW_LISTENER`. Async-signal-safe (one
/// system call, no allocation): usable between `fork` and `execve`.
pub(crate) fn seccomp_set_filter(flags: libc::c_ulong, prog: &[libc::sock_filter]) -> Result<RawFd, i32> {
    let fprog = libc::sock_fprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel
    // copies the program and never writes through the pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret as RawFd)
    }
}

/// The calling thread's `errno`.
pub(crate) fn errno() -> i32 {
    // SAFETY: `__errno_location` returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Reads `buf.len()` bytes at `addr` in thread `pid`; returns how many were
/// read (short when the range runs into unmapped memory).
pub(crate) fn process_vm_read(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes our own writable buffer; `remote` is only
    // interpreted in the target's address space, where the kernel checks it.
    let n = cvt(unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) } as libc::c_long)?;
    Ok(n as usize)
}

/// Writes `buf` at `addr` in thread `pid`; returns how many bytes were
/// written.
pub(crate) fn process_vm_write(pid: u32, addr: u64, buf: &[u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let local = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes our own readable buffer (the kernel only reads
    // it); `remote` is checked by the kernel in the target's address space.
    let n = cvt(unsafe { libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0) } as libc::c_long)?;
    Ok(n as usize)
}

/// Writes each `(addr, bytes)` pair into thread `pid` with one system call;
/// returns the total number of bytes written.
pub(crate) fn process_vm_write_many(pid: u32, parts: &[(u64, &[u8])]) -> io::Result<usize> {
    let local: Vec<libc::iovec> = parts
        .iter()
        .map(|(_, b)| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    let remote: Vec<libc::iovec> = parts
        .iter()
        .map(|(a, b)| libc::iovec {
            iov_base: *a as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: every local iovec describes a live readable slice of ours (the
    // kernel only reads them); remote ones are checked by the kernel in the
    // target's address space.
    let n = cvt(unsafe {
        libc::process_vm_writev(
            pid as libc::pid_t,
            local.as_ptr(),
            local.len() as libc::c_ulong,
            remote.as_ptr(),
            remote.len() as libc::c_ulong,
            0,
        )
    } as libc::c_long)?;
    Ok(n as usize)
}

/// Everything the child needs between `fork` and `execve`, allocated before
/// the fork.
pub(crate) struct ChildPlan<'a> {
    /// Resolved program path.
    pub path: &'a std::ffi::CStr,
    /// NULL-terminated argument vector.
    pub argv: &'a [*const libc::c_char],
    /// The filter.
    pub prog: &'a [libc::sock_filter],
    /// Status pipe, write end.
    pub status_w: RawFd,
    /// Acknowledgement pipe, read end.
    pub ack_r: RawFd,
}

/// Forks a child that loads `plan.prog` and execs `plan.path`; returns the
/// child's pid in the parent. The protocol on the pipes is described in
/// `launch.rs`.
pub(crate) fn fork_filtered(plan: &ChildPlan<'_>) -> io::Result<libc::pid_t> {
    // SAFETY: in the child only async-signal-safe system calls on memory
    // allocated before the fork are made (see `child_main`), ending in
    // `execve` or `_exit`; the parent continues normally.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => child_main(plan),
        pid => Ok(pid),
    }
}

fn child_main(plan: &ChildPlan<'_>) -> ! {
    let sw = plan.status_w;
    let fail = |step: u8, errno: i32| -> ! {
        let e = errno.to_ne_bytes();
        let _ = child::write_all(sw, &[0xff, step, e[0], e[1], e[2], e[3]]);
        child::exit(127)
    };
    child::reset_signals();
    if let Err(e) = child::no_new_privs() {
        fail(0, e);
    }
    let killable = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    let (listener, killable_ok) = match seccomp_set_filter(killable, plan.prog) {
        Ok(fd) => (fd, 1u8),
        Err(libc::EINVAL) => match seccomp_set_filter(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER, plan.prog) {
            Ok(fd) => (fd, 0u8),
            Err(e) => fail(1, e),
        },
        Err(e) => fail(1, e),
    };
    let n = listener.to_ne_bytes();
    if let Err(e) = child::write_all(sw, &[0x00, killable_ok, n[0], n[1], n[2], n[3]]) {
        fail(2, e);
    }
    if !child::read_byte(plan.ack_r) {
        fail(2, libc::EPIPE);
    }
    child::close(listener);
    let e = child::execve(plan.path, plan.argv);
    fail(3, e)
}

/// Child-side steps between `fork` and `execve`; each is one system call.
mod child {
    use super::errno;
    use std::ffi::CStr;

    /// Empties the signal mask and restores default dispositions the parent
    /// may have changed, so the program starts as it would from a shell.
    pub(crate) fn reset_signals() {
        // SAFETY: sigemptyset initialises a local set; sigprocmask and signal
        // are async-signal-safe system calls.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGPIPE, libc::SIGTERM, libc::SIGCHLD] {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }

    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
    pub(crate) fn no_new_privs() -> Result<(), i32> {
        // SAFETY: a plain system call with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        if r < 0 {
            Err(errno())
        } else {
            Ok(())
        }
    }

    /// `write(2)` of all of `buf`, retrying on `EINTR`.
    pub(crate) fn write_all(fd: i32, mut buf: &[u8]) -> Result<(), i32> {
        while !buf.is_empty() {
            // SAFETY: `buf` is a live readable slice.
            let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = errno();
                if e == libc::EINTR {
                    continue;
                }
                return Err(e);
            }
            buf = &buf[n as usize..];
        }
        Ok(())
    }

    /// `read(2)` of one byte, retrying on `EINTR`; `false` on EOF or error.
    pub(crate) fn read_byte(fd: i32) -> bool {
        let mut b = 0u8;
        loop {
            // SAFETY: reads one byte into a live local.
            let n = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
            if n < 0 && errno() == libc::EINTR {
                continue;
            }
            return n == 1;
        }
    }

    /// `close(2)`.
    pub(crate) fn close(fd: i32) {
        // SAFETY: the child owns `fd` and never uses it again.
        unsafe { libc::close(fd) };
    }

    /// `execve(2)`; returns only on failure, with its errno.
    pub(crate) fn execve(path: &CStr, argv: &[*const libc::c_char]) -> i32 {
        // SAFETY: `argv` is a NULL-terminated array of pointers to live C
        // strings built before fork; `environ` is this process's environment.
        unsafe {
            extern "C" {
                static environ: *const *const libc::c_char;
            }
            libc::execve(path.as_ptr(), argv.as_ptr(), environ);
        }
        errno()
    }

    /// `_exit(2)`.
    pub(crate) fn exit(code: i32) -> ! {
        // SAFETY: `_exit` ends the process without running any user-space code.
        unsafe { libc::_exit(code) }
    }
}
