//! The notification listener and the notifications it hands out.
//!
//! A [`Notification`] must be answered exactly once: every way of answering
//! consumes it. If one is dropped unanswered (a bug, or a panic unwinding),
//! its `Drop` answers `ENOSYS` so the target thread is never left asleep.
//!
//! Target memory is read through the notification, once per argument, with a
//! cap on every length, and `SECCOMP_IOCTL_NOTIF_ID_VALID` is checked after
//! every read: if the id is no longer valid the thread we read from may not be
//! the one that made the call (it died and its tid was reused), so the bytes
//! are thrown away.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Arc;

use crate::sys;

/// The seccomp user-notification fd of one filter.
#[derive(Debug)]
pub struct Listener {
    fd: Arc<OwnedFd>,
    /// Buffer size for `NOTIF_RECV`, in u64 words, from the kernel's sizes.
    recv_words: usize,
}

/// Errors of the listener and of answering.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The calling thread is gone: killed, or interrupted by a signal before
    /// the answer (`ENOENT` from the kernel). Whatever was done on its behalf
    /// must be kept for its next call.
    #[error("the target thread is gone or its call was interrupted")]
    Gone,
    /// Every process using the filter has exited.
    #[error("no process uses the filter any more")]
    Closed,
    /// Any other failure of a seccomp ioctl.
    #[error("{op}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The kernel's error.
        source: io::Error,
    },
}

impl NotifyError {
    fn io(op: &'static str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::ENOENT) => NotifyError::Gone,
            _ => NotifyError::Io { op, source },
        }
    }
}

/// Why target memory could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    /// The range is not mapped (readable/writable) in the target: the call
    /// fails with `EFAULT`, as it would in the kernel.
    #[error("bad address in the target")]
    Fault,
    /// The length is larger than the cap for this argument.
    #[error("length {len} exceeds the limit of {max} bytes")]
    TooLong {
        /// Requested length.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// The call is no longer pending (target died or was interrupted); the
    /// bytes read may not be the caller's.
    #[error("the target thread is gone")]
    Gone,
}

impl MemError {
    /// The errno a target should see for this error, if it is still there.
    pub fn errno(self) -> i32 {
        match self {
            MemError::Fault | MemError::Gone => libc::EFAULT,
            MemError::TooLong { .. } => libc::EINVAL,
        }
    }
}

/// Flags of [`Listener::set_sync_wake_up`]'s result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncWakeUp {
    /// The kernel wakes the answered thread on the supervisor's CPU.
    Enabled,
    /// The kernel does not have `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (< 6.6).
    Unsupported,
}

impl Listener {
    /// Wraps a listener fd returned by `seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER)`.
    pub fn from_fd(fd: OwnedFd) -> Result<Listener, NotifyError> {
        let sizes = sys::notif_sizes().map_err(|e| NotifyError::io("SECCOMP_GET_NOTIF_SIZES", e))?;
        let bytes = (sizes.seccomp_notif as usize).max(std::mem::size_of::<libc::seccomp_notif>());
        Ok(Listener {
            fd: Arc::new(fd),
            recv_words: bytes.div_ceil(8),
        })
    }

    /// Asks the kernel to wake answered threads synchronously on this CPU
    /// (`SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`, Linux 6.6).
    pub fn set_sync_wake_up(&self) -> Result<SyncWakeUp, NotifyError> {
        match sys::notif_set_flags(self.fd.as_fd(), sys::SYNC_WAKE_UP) {
            Ok(()) => Ok(SyncWakeUp::Enabled),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(SyncWakeUp::Unsupported),
            Err(e) => Err(NotifyError::io("SECCOMP_IOCTL_NOTIF_SET_FLAGS", e)),
        }
    }

    /// Waits for the next notification. `EINTR` and `ENOENT` (the caller
    /// vanished between the wake-up and the read) are retried; `Closed` means
    /// no process uses the filter any more.
    pub fn recv(&self) -> Result<Notification, NotifyError> {
        let mut buf = vec![0u64; self.recv_words];
        loop {
            match sys::notif_recv(self.fd.as_fd(), &mut buf) {
                Ok(n) => {
                    return Ok(Notification {
                        listener: Arc::clone(&self.fd),
                        id: n.id,
                        pid: n.pid,
                        nr: n.data.nr,
                        arch: n.data.arch,
                        ip: n.data.instruction_pointer,
                        args: n.data.args,
                        answered: false,
                    })
                }
                Err(e) => match e.raw_os_error() {
                    Some(libc::EINTR) | Some(libc::ENOENT) => continue,
                    // With no filter users left the kernel reports ENOENT on
                    // some versions and EBADF-like errors on none; a poll
                    // reporting POLLHUP is the reliable signal, so callers
                    // should poll first. Treat ESRCH as closed too.
                    Some(libc::ESRCH) => return Err(NotifyError::Closed),
                    _ => return Err(NotifyError::io("SECCOMP_IOCTL_NOTIF_RECV", e)),
                },
            }
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One trapped system call, waiting for its answer.
#[derive(Debug)]
#[must_use = "a notification must be answered, or the target thread sleeps until killed"]
pub struct Notification {
    listener: Arc<OwnedFd>,
    /// The kernel's id for this call.
    pub id: u64,
    /// The calling thread, in the supervisor's pid namespace.
    pub pid: u32,
    /// System call number (of the ABI in `arch`).
    pub nr: i32,
    /// `AUDIT_ARCH_*` of the call's ABI.
    pub arch: u32,
    /// Instruction pointer of the call.
    pub ip: u64,
    /// Raw argument registers.
    pub args: [u64; 6],
    answered: bool,
}

/// `ERESTARTSYS` (kernel-internal, `include/linux/errno.h`): never seen by
/// programs, which get their call restarted or `EINTR` instead.
pub const ERESTARTSYS: i32 = 512;

/// `AUDIT_ARCH_X86_64`: the native ABI (x32 calls carry it too, with
/// `__X32_SYSCALL_BIT` set in the number).
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `AUDIT_ARCH_I386`: `int 0x80` and 32-bit programs.
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// `__X32_SYSCALL_BIT`.
pub const X32_SYSCALL_BIT: i32 = 0x4000_0000;

/// How to install an fd in the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddFd {
    /// Set `O_CLOEXEC` on the new fd.
    pub cloexec: bool,
    /// Install at this number (`SECCOMP_ADDFD_FLAG_SETFD`, replacing what is
    /// there) instead of the lowest free one.
    pub at: Option<RawFd>,
}

impl Notification {
    /// Whether the call was made through the native x86-64 ABI.
    pub fn is_native(&self) -> bool {
        self.arch == AUDIT_ARCH_X86_64 && self.nr & X32_SYSCALL_BIT == 0
    }

    /// Whether the call is still pending (the thread has not died or been
    /// interrupted).
    pub fn is_valid(&self) -> bool {
        sys::notif_id_valid(self.listener.as_fd(), self.id).is_ok()
    }

    /// Reads `len` bytes at `addr` in the target, refusing lengths over `max`.
    /// Checks `ID_VALID` after reading.
    pub fn read_bytes(&self, addr: u64, len: u64, max: usize) -> Result<Vec<u8>, MemError> {
        if len > max as u64 {
            return Err(MemError::TooLong { len, max });
        }
        let mut buf = vec![0u8; len as usize];
        if len > 0 {
            if addr == 0 {
                return Err(MemError::Fault);
            }
            match sys::process_vm_read(self.pid, addr, &mut buf) {
                Ok(n) if n == buf.len() => {}
                Ok(_) => return Err(MemError::Fault),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Err(MemError::Gone),
                Err(_) => return Err(MemError::Fault),
            }
        }
        if !self.is_valid() {
            return Err(MemError::Gone);
        }
        Ok(buf)
    }

    /// Reads a native-endian `u32` (a `socklen_t`) at `addr`.
    pub fn read_u32(&self, addr: u64) -> Result<u32, MemError> {
        let b = self.read_bytes(addr, 4, 4)?;
        Ok(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Writes `bytes` at `addr` in the target.
    pub fn write_bytes(&self, addr: u64, bytes: &[u8]) -> Result<(), MemError> {
        if bytes.is_empty() {
            return Ok(());
        }
        if addr == 0 {
            return Err(MemError::Fault);
        }
        match sys::process_vm_write(self.pid, addr, bytes) {
            Ok(n) if n == bytes.len() => Ok(()),
            Ok(_) => Err(MemError::Fault),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(MemError::Gone),
            Err(_) => Err(MemError::Fault),
        }
    }

    /// Writes several `(addr, bytes)` pieces in one system call (a result
    /// and its length, say). All or nothing as far as the caller can tell: a
    /// short write is a fault.
    pub fn write_many(&self, parts: &[(u64, &[u8])]) -> Result<(), MemError> {
        let parts: Vec<(u64, &[u8])> = parts.iter().copied().filter(|(_, b)| !b.is_empty()).collect();
        if parts.is_empty() {
            return Ok(());
        }
        if parts.iter().any(|(a, _)| *a == 0) {
            return Err(MemError::Fault);
        }
        let total: usize = parts.iter().map(|(_, b)| b.len()).sum();
        match sys::process_vm_write_many(self.pid, &parts) {
            Ok(n) if n == total => Ok(()),
            Ok(_) => Err(MemError::Fault),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(MemError::Gone),
            Err(_) => Err(MemError::Fault),
        }
    }

    /// Opens a pidfd for the calling thread, checking afterwards that the
    /// thread is still the caller.
    pub fn pidfd(&self) -> Result<OwnedFd, MemError> {
        let pid = rustix::process::Pid::from_raw(self.pid as i32).ok_or(MemError::Gone)?;
        let thread = rustix::process::PidfdFlags::from_bits_retain(sys::PIDFD_THREAD);
        let fd = match rustix::process::pidfd_open(pid, thread) {
            Ok(fd) => fd,
            // Before Linux 6.9 a pidfd names a process: use the thread group.
            Err(rustix::io::Errno::INVAL) => {
                let tgid = thread_group(self.pid).ok_or(MemError::Gone)?;
                let tgid = rustix::process::Pid::from_raw(tgid).ok_or(MemError::Gone)?;
                rustix::process::pidfd_open(tgid, rustix::process::PidfdFlags::empty()).map_err(|_| MemError::Gone)?
            }
            Err(_) => return Err(MemError::Gone),
        };
        if !self.is_valid() {
            return Err(MemError::Gone);
        }
        Ok(fd)
    }

    /// Duplicates the target's fd `fd` into the supervisor (`pidfd_getfd`).
    /// `Err(EBADF)` if the target has no such fd.
    pub fn dup_fd(&self, pidfd: BorrowedFd<'_>, fd: RawFd) -> Result<OwnedFd, i32> {
        if fd < 0 {
            return Err(libc::EBADF);
        }
        rustix::process::pidfd_getfd(pidfd, fd, rustix::process::PidfdGetfdFlags::empty()).map_err(|e| e.raw_os_error())
    }

    /// Installs `fd` in the target without answering (`ADDFD`); returns the
    /// fd number in the target.
    pub fn add_fd(&self, fd: BorrowedFd<'_>, how: AddFd) -> Result<RawFd, NotifyError> {
        let (newfd, flags) = match how.at {
            Some(n) => (n as u32, libc::SECCOMP_ADDFD_FLAG_SETFD as u32),
            None => (0, 0),
        };
        let cloexec = if how.cloexec { libc::O_CLOEXEC as u32 } else { 0 };
        sys::notif_addfd(self.listener.as_fd(), self.id, fd, newfd, cloexec, flags)
            .map_err(|e| NotifyError::io("SECCOMP_IOCTL_NOTIF_ADDFD", e))
    }

    /// Installs `fd` in the target and answers the call with its number in
    /// one step (`SECCOMP_ADDFD_FLAG_SEND`): the target never sees a call that
    /// succeeded without its fd, nor an fd without the answer.
    pub fn answer_with_fd(mut self, fd: BorrowedFd<'_>, how: AddFd) -> Result<RawFd, NotifyError> {
        self.answered = true;
        let (newfd, mut flags) = match how.at {
            Some(n) => (n as u32, libc::SECCOMP_ADDFD_FLAG_SETFD as u32),
            None => (0, 0),
        };
        flags |= libc::SECCOMP_ADDFD_FLAG_SEND as u32;
        let cloexec = if how.cloexec { libc::O_CLOEXEC as u32 } else { 0 };
        sys::notif_addfd(self.listener.as_fd(), self.id, fd, newfd, cloexec, flags)
            .map_err(|e| NotifyError::io("SECCOMP_IOCTL_NOTIF_ADDFD(SEND)", e))
    }

    /// Answers the call with return value `val`.
    pub fn answer(mut self, val: i64) -> Result<(), NotifyError> {
        self.answered = true;
        sys::notif_send(self.listener.as_fd(), self.id, val, 0, 0)
            .map_err(|e| NotifyError::io("SECCOMP_IOCTL_NOTIF_SEND", e))
    }

    /// Answers the call with an error: the target sees `-1` and `errno`.
    pub fn answer_errno(mut self, errno: i32) -> Result<(), NotifyError> {
        self.answered = true;
        sys::notif_send(self.listener.as_fd(), self.id, 0, -errno.abs(), 0)
            .map_err(|e| NotifyError::io("SECCOMP_IOCTL_NOTIF_SEND", e))
    }

    /// Answers `-ERESTARTSYS`, the kernel's own "interrupted by a signal"
    /// result: on the way back to user space the kernel runs the pending
    /// signal's handler and then restarts the call (the handler has
    /// `SA_RESTART`; the call is trapped again) or returns `EINTR` (it has
    /// not); with no signal left to deliver it restarts the call. This is how
    /// a call the supervisor holds is interrupted exactly as the kernel would
    /// interrupt it.
    pub fn answer_restart(mut self) -> Result<(), NotifyError> {
        self.answered = true;
        sys::notif_send(self.listener.as_fd(), self.id, 0, -ERESTARTSYS, 0)
            .map_err(|e| NotifyError::io("SECCOMP_IOCTL_NOTIF_SEND", e))
    }

    /// Forgets a call the kernel no longer has (its id is no longer valid:
    /// the thread died or its wait was interrupted). Nothing is sent.
    pub fn abandon(mut self) {
        self.answered = true;
    }

    /// Lets the kernel run the call as if it had not been trapped.
    ///
    /// Only for decisions that did not depend on target memory: the target
    /// could change that memory between our read and the kernel's.
    pub fn answer_continue(mut self) -> Result<(), NotifyError> {
        self.answered = true;
        sys::notif_send(
            self.listener.as_fd(),
            self.id,
            0,
            0,
            libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        )
        .map_err(|e| NotifyError::io("SECCOMP_IOCTL_NOTIF_SEND", e))
    }
}

impl Drop for Notification {
    fn drop(&mut self) {
        if !self.answered {
            tracing::error!(
                id = self.id,
                pid = self.pid,
                nr = self.nr,
                "notification dropped unanswered; answering ENOSYS"
            );
            let _ = sys::notif_send(self.listener.as_fd(), self.id, 0, -libc::ENOSYS, 0);
        }
    }
}

/// The thread group (process id) of thread `tid`, from `/proc`.
fn thread_group(tid: u32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
