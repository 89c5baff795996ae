//! Socket calls on the supervisor's own fds with raw byte arguments: the
//! supervisor replays a target's call with its own copy of the target's bytes,
//! so addresses and option values must reach the kernel exactly as the
//! program wrote them, not re-encoded through a typed API. The only module of
//! this crate allowed `unsafe`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

/// `socket(2)`.
pub fn socket(domain: i32, ty: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; on success we own the new fd.
    let fd = cvt(unsafe { libc::socket(domain, ty, protocol) })?;
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `socketpair(2)`.
pub fn socketpair(domain: i32, ty: i32, protocol: i32) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut sv = [0 as libc::c_int; 2];
    // SAFETY: `sv` is a live two-element array the kernel fills.
    cvt(unsafe { libc::socketpair(domain, ty, protocol, sv.as_mut_ptr()) })?;
    // SAFETY: both fds were just created by the kernel and are ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) })
}

/// `bind(2)` with the address bytes as given.
pub fn bind(fd: BorrowedFd<'_>, addr: &[u8]) -> io::Result<()> {
    // SAFETY: `addr` is a live slice of `addr.len()` bytes; the kernel copies it.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), addr.as_ptr().cast(), addr.len() as libc::socklen_t) })?;
    Ok(())
}

/// `connect(2)` with the address bytes as given.
pub fn connect(fd: BorrowedFd<'_>, addr: &[u8]) -> io::Result<()> {
    let ptr = if addr.is_empty() {
        std::ptr::null()
    } else {
        addr.as_ptr()
    };
    // SAFETY: `ptr` is NULL or points at `addr.len()` live bytes.
    cvt(unsafe { libc::connect(fd.as_raw_fd(), ptr.cast(), addr.len() as libc::socklen_t) })?;
    Ok(())
}

/// `listen(2)`.
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(())
}

/// `shutdown(2)`.
pub fn shutdown(fd: BorrowedFd<'_>, how: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::shutdown(fd.as_raw_fd(), how) })?;
    Ok(())
}

/// `accept4(2)`; returns the new socket and the peer address (its full
/// length as the kernel reports it, bytes up to 128).
pub fn accept4(fd: BorrowedFd<'_>, flags: i32) -> io::Result<(OwnedFd, Vec<u8>, u32)> {
    let mut addr = [0u8; 128];
    let mut len = addr.len() as libc::socklen_t;
    // SAFETY: `addr`/`len` are live locals describing a 128-byte buffer.
    let nfd = cvt(unsafe { libc::accept4(fd.as_raw_fd(), addr.as_mut_ptr().cast(), &mut len, flags) })?;
    // SAFETY: `nfd` is a new fd owned by nobody else.
    let nfd = unsafe { OwnedFd::from_raw_fd(nfd) };
    let shown = (len as usize).min(addr.len());
    Ok((nfd, addr[..shown].to_vec(), len))
}

/// `getsockname(2)` or `getpeername(2)`: the address bytes and the full
/// length the kernel reports.
pub fn sockname(fd: BorrowedFd<'_>, peer: bool) -> io::Result<(Vec<u8>, u32)> {
    let mut addr = [0u8; 128];
    let mut len = addr.len() as libc::socklen_t;
    // SAFETY: `addr`/`len` describe a live 128-byte buffer.
    cvt(unsafe {
        if peer {
            libc::getpeername(fd.as_raw_fd(), addr.as_mut_ptr().cast(), &mut len)
        } else {
            libc::getsockname(fd.as_raw_fd(), addr.as_mut_ptr().cast(), &mut len)
        }
    })?;
    let shown = (len as usize).min(addr.len());
    Ok((addr[..shown].to_vec(), len))
}

/// `getsockopt(2)` into `buf`; returns the option length the kernel reports.
pub fn getsockopt(fd: BorrowedFd<'_>, level: i32, name: i32, buf: &mut [u8]) -> io::Result<u32> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf`/`len` describe a live writable buffer.
    cvt(unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, buf.as_mut_ptr().cast(), &mut len) })?;
    Ok(len)
}

/// `setsockopt(2)` with the value bytes as given.
pub fn setsockopt(fd: BorrowedFd<'_>, level: i32, name: i32, val: &[u8]) -> io::Result<()> {
    let ptr = if val.is_empty() { std::ptr::null() } else { val.as_ptr() };
    // SAFETY: `ptr` is NULL or points at `val.len()` live bytes.
    cvt(unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, ptr.cast(), val.len() as libc::socklen_t) })?;
    Ok(())
}

/// An `int` socket option.
pub fn getsockopt_int(fd: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<i32> {
    let mut b = [0u8; 4];
    getsockopt(fd, level, name, &mut b)?;
    Ok(i32::from_ne_bytes(b))
}

/// `sendmsg(2)`: `name` and `control` as given, data from `iov`.
pub fn sendmsg(
    fd: BorrowedFd<'_>,
    name: Option<&[u8]>,
    iov: &[&[u8]],
    control: &[u8],
    flags: i32,
) -> io::Result<usize> {
    let mut iovecs: Vec<libc::iovec> = iov
        .iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: all-zero bytes are a valid `msghdr` (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    if let Some(name) = name {
        msg.msg_name = name.as_ptr() as *mut libc::c_void;
        msg.msg_namelen = name.len() as libc::socklen_t;
    }
    msg.msg_iov = iovecs.as_mut_ptr();
    msg.msg_iovlen = iovecs.len();
    if !control.is_empty() {
        msg.msg_control = control.as_ptr() as *mut libc::c_void;
        msg.msg_controllen = control.len();
    }
    // SAFETY: every pointer in `msg` refers to a live buffer of the stated
    // length for the duration of the call; the kernel only reads them.
    cvt_size(unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, flags) })
}

/// What `recvmsg(2)` returned.
#[derive(Debug, Default)]
pub struct Received {
    /// The return value: bytes received (may exceed the buffer with `MSG_TRUNC`).
    pub n: usize,
    /// Source address bytes (up to 128) ...
    pub name: Vec<u8>,
    /// ... and the length the kernel reported.
    pub namelen: u32,
    /// Control data as received.
    pub control: Vec<u8>,
    /// `msg_flags`.
    pub flags: i32,
}

/// `recvmsg(2)` into one buffer of `buf.len()` bytes.
pub fn recvmsg(fd: BorrowedFd<'_>, buf: &mut [u8], control_cap: usize, flags: i32) -> io::Result<Received> {
    let mut name = [0u8; 128];
    let mut control = vec![0u8; control_cap];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero bytes are a valid `msghdr`.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = name.as_mut_ptr().cast();
    msg.msg_namelen = name.len() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if control_cap > 0 {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = control_cap;
    }
    // SAFETY: every pointer in `msg` refers to a live writable buffer of the
    // stated length for the duration of the call.
    let n = cvt_size(unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) })?;
    control.truncate(msg.msg_controllen.min(control_cap));
    let namelen = msg.msg_namelen;
    Ok(Received {
        n,
        name: name[..(namelen as usize).min(name.len())].to_vec(),
        namelen,
        control,
        flags: msg.msg_flags,
    })
}

/// Control messages: `(level, type, data)` for each header in `buf`.
pub fn parse_cmsgs(buf: &[u8]) -> Vec<(i32, i32, Vec<u8>)> {
    let hdr = std::mem::size_of::<libc::cmsghdr>();
    let align = |n: usize| (n + 7) & !7;
    let mut out = Vec::new();
    let mut off = 0;
    while off + hdr <= buf.len() {
        let len = usize::from_ne_bytes(buf[off..off + 8].try_into().expect("8 bytes"));
        let level = i32::from_ne_bytes(buf[off + 8..off + 12].try_into().expect("4 bytes"));
        let ty = i32::from_ne_bytes(buf[off + 12..off + 16].try_into().expect("4 bytes"));
        if len < hdr || off + len > buf.len() {
            break;
        }
        out.push((level, ty, buf[off + hdr..off + len].to_vec()));
        off += align(len);
    }
    out
}

/// Encodes control messages as the kernel lays them out.
pub fn build_cmsgs(msgs: &[(i32, i32, Vec<u8>)]) -> Vec<u8> {
    let hdr = std::mem::size_of::<libc::cmsghdr>();
    let align = |n: usize| (n + 7) & !7;
    let mut out = Vec::new();
    for (level, ty, data) in msgs {
        let len = hdr + data.len();
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&level.to_ne_bytes());
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(data);
        out.resize(out.len() + align(len) - len, 0);
    }
    out
}

/// Takes ownership of the fds the kernel put into this process with
/// `SCM_RIGHTS` (native-endian `int`s in `data`).
pub fn own_fds(data: &[u8]) -> Vec<OwnedFd> {
    data.chunks_exact(4)
        .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .filter(|&fd| fd >= 0)
        // SAFETY: the kernel just installed these fds in our table for this
        // message; nothing else knows their numbers, so we are the sole owner.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect()
}

/// Ignores signal `sig` (`SIG_IGN`) in the supervisor.
pub fn ignore_signal(sig: i32) -> io::Result<()> {
    // SAFETY: SIG_IGN installs no handler, so no code runs in signal context.
    if unsafe { libc::signal(sig, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The last signal caught by [`forward_signal`]'s handler, 0 if none.
static FORWARDED: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

extern "C" fn remember_signal(sig: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    FORWARDED.store(sig, std::sync::atomic::Ordering::Relaxed);
}

/// Catches signal `sig` so that the event loop can pass it on to the
/// program (see [`take_forwarded_signal`]).
pub fn forward_signal(sig: i32) -> io::Result<()> {
    let handler: extern "C" fn(libc::c_int) = remember_signal;
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; `sa` is fully initialised before the call.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The signal caught since the last call, if any.
pub fn take_forwarded_signal() -> Option<i32> {
    match FORWARDED.swap(0, std::sync::atomic::Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}

/// The fds open in this process.
pub fn open_fds() -> io::Result<Vec<i32>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        if let Some(fd) = entry?.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
            fds.push(fd);
        }
    }
    Ok(fds)
}

/// Sets `FD_CLOEXEC` on every open fd not in `inherited`, so that nothing
/// the supervisor opened (DPDK's packet sockets and memory files among them)
/// leaks into the program it starts, while what it was given passes on.
pub fn cloexec_all_but(inherited: &[i32]) -> io::Result<()> {
    for fd in open_fds()? {
        if !inherited.contains(&fd) {
            // SAFETY: F_SETFD on a number: at worst EBADF for an fd closed
            // meanwhile (the directory's own fd); no memory is involved.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    Ok(())
}

/// The identity of an open file: `(st_dev, st_ino)`.
pub fn file_id(fd: BorrowedFd<'_>) -> io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(fd)?;
    Ok((st.st_dev, st.st_ino))
}

/// Local time's offset from UTC now, in seconds (`localtime_r`'s
/// `tm_gmtoff`, with the process's `TZ`); 0 if it cannot be had.
pub fn utc_offset_now() -> i64 {
    // SAFETY: time(NULL) only returns the clock.
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to fill.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the call; localtime_r is the
    // reentrant form and writes only into `tm`.
    let r = unsafe { libc::localtime_r(&now, &mut tm) };
    if r.is_null() {
        0
    } else {
        tm.tm_gmtoff
    }
}

/// A duplicate of thread `tid`'s fd `fd` (`pidfd_open` with
/// `PIDFD_THREAD`, then `pidfd_getfd`); `None` if the thread or the fd is
/// gone. The caller checks that it is still the object it expects.
pub fn thread_fd(tid: u32, fd: i32) -> Option<OwnedFd> {
    use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};
    let pid = Pid::from_raw(i32::try_from(tid).ok()?)?;
    let thread = PidfdFlags::from_bits_retain(libc::O_EXCL as u32);
    let pidfd = pidfd_open(pid, thread).ok()?;
    pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()).ok()
}

/// Whether `fd` polls readable right now (a listener: a connection waits).
pub fn readable_now(fd: BorrowedFd<'_>) -> bool {
    let mut p = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
    rustix::event::poll(&mut p, 0).is_ok_and(|n| n > 0)
}

/// Whether the open file description has `O_NONBLOCK`.
pub fn is_nonblocking(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(rustix::fs::fcntl_getfl(fd)?.contains(rustix::fs::OFlags::NONBLOCK))
}

/// Runs `f` with `O_NONBLOCK` set on the open file description (shared with
/// the target), then restores its flags.
pub fn with_nonblocking<T>(fd: BorrowedFd<'_>, f: impl FnOnce() -> T) -> io::Result<T> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    if flags.contains(rustix::fs::OFlags::NONBLOCK) {
        return Ok(f());
    }
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    let out = f();
    rustix::fs::fcntl_setfl(fd, flags)?;
    Ok(out)
}

/// A namespace ioctl that returns a new fd (`NS_GET_USERNS`, `NS_GET_PARENT`).
pub fn ns_ioctl_fd(ns: BorrowedFd<'_>, request: libc::Ioctl) -> io::Result<OwnedFd> {
    // SAFETY: these requests take no argument and return a new fd or -1.
    let fd = cvt(unsafe { libc::ioctl(ns.as_raw_fd(), request) })?;
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `NS_GET_OWNER_UID`: the uid that owns user namespace `ns`, as seen from ours.
pub fn ns_owner_uid(ns: BorrowedFd<'_>) -> io::Result<u32> {
    let mut uid: libc::uid_t = 0;
    // SAFETY: the kernel writes one uid_t to the live local `uid`.
    cvt(unsafe { libc::ioctl(ns.as_raw_fd(), libc::NS_GET_OWNER_UID, &mut uid as *mut libc::uid_t) })?;
    Ok(uid)
}

/// `if_nametoindex(3)`: the index of interface `name` in the calling
/// thread's network namespace, 0 if there is none.
pub fn if_nametoindex(name: &std::ffi::CStr) -> u32 {
    // SAFETY: `name` is a live NUL-terminated string the call only reads.
    unsafe { libc::if_nametoindex(name.as_ptr()) }
}

/// `PIDFD_GET_INFO` (Linux 6.13+) with `PIDFD_INFO_CREDS`: the real,
/// effective, saved and filesystem uids and gids of the task `pidfd` names,
/// as seen from our user namespace.
pub fn pidfd_ids(pidfd: BorrowedFd<'_>) -> io::Result<([u32; 4], [u32; 4])> {
    // SAFETY: `pidfd_info` is plain integers, for which all zeroes is a value.
    let mut info: libc::pidfd_info = unsafe { std::mem::zeroed() };
    info.mask = u64::from(libc::PIDFD_INFO_CREDS);
    // SAFETY: the kernel writes at most `sizeof(struct pidfd_info)` bytes (the
    // size the request encodes) into the live local `info`.
    cvt(unsafe {
        libc::ioctl(
            pidfd.as_raw_fd(),
            libc::PIDFD_GET_INFO,
            &mut info as *mut libc::pidfd_info,
        )
    })?;
    if info.mask & u64::from(libc::PIDFD_INFO_CREDS) == 0 {
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    Ok((
        [info.ruid, info.euid, info.suid, info.fsuid],
        [info.rgid, info.egid, info.sgid, info.fsgid],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmsg_round_trip() {
        let msgs = vec![
            (
                libc::SOL_SOCKET,
                libc::SCM_RIGHTS,
                [3i32, 4].iter().flat_map(|f| f.to_ne_bytes()).collect(),
            ),
            (libc::SOL_SOCKET, libc::SCM_CREDENTIALS, vec![1; 12]),
        ];
        let b = build_cmsgs(&msgs);
        assert_eq!(b.len(), 24 + 32);
        assert_eq!(parse_cmsgs(&b), msgs);
        // Truncated buffers never read past the end.
        assert_eq!(parse_cmsgs(&b[..20]).len(), 0);
    }

    #[test]
    fn replayed_calls_on_own_sockets() {
        use std::os::fd::AsFd;
        let (a, b) = socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0).unwrap();
        assert_eq!(sendmsg(a.as_fd(), None, &[b"he", b"llo"], &[], 0).unwrap(), 5);
        let mut buf = [0u8; 3];
        let r = recvmsg(b.as_fd(), &mut buf, 0, libc::MSG_TRUNC).unwrap();
        assert_eq!(r.n, 5, "MSG_TRUNC reports the real length");
        assert_eq!(&buf, b"hel");
        assert_ne!(r.flags & libc::MSG_TRUNC, 0);
        assert!(!is_nonblocking(a.as_fd()).unwrap());
        with_nonblocking(a.as_fd(), || assert!(is_nonblocking(a.as_fd()).unwrap())).unwrap();
        assert!(!is_nonblocking(a.as_fd()).unwrap());
    }
}
