//! Each network call, served on the kernel's stack.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use joyride_notify::syscall::{
    accept_flags, msg_flags, shutdown_how, sock_type, socket_domain, sockopt_level, sockopt_name, Iovec, MmsgHdr,
    MsgHdr, Quoted, RawMsgHdr, SockAddr, SockoptValue, CMSG_MAX, IOV_MAX, OPTVAL_MAX, SOCKADDR_MAX,
};
use joyride_notify::{AddFd, NetCall, Notification, NotifyError, Syscall};

use super::stash::{Accepted, Datagram};
use super::{errno_of, may_block, mem, timeout_deadline, Ctx, Hooks, Interest, Parked, Progress};
use crate::agent::OptVal;
use crate::record::Record;
use crate::sys;

/// Largest payload copied for one send or receive. A stream send of more is
/// a short write, as the kernel may also do; no datagram is this large.
pub const DATA_MAX: usize = 4 << 20;

/// A call that may have to wait.
pub enum Op {
    /// `connect` on a blocking socket, in progress.
    Connect {
        /// Target fd.
        fd: i32,
        /// Address bytes.
        addr: Vec<u8>,
        /// Length argument.
        addrlen: i32,
    },
    /// `accept`/`accept4`.
    Accept(AcceptOp),
    /// `sendto`/`sendmsg`/`sendmmsg`.
    Send(SendOp),
    /// `recvfrom`/`recvmsg`/`recvmmsg`.
    Recv(RecvOp),
}

/// State of an accept.
pub struct AcceptOp {
    call: NetCall,
    fd: i32,
    flags: i32,
    addr_ptr: u64,
    len_ptr: u64,
    user_len: u32,
}

/// One message to send.
struct OutMsg {
    name: Option<Vec<u8>>,
    data: Vec<u8>,
    iov_lens: Vec<u64>,
    /// The control messages for the kernel (our fds for `SCM_RIGHTS`).
    control: Vec<u8>,
    /// The control buffer as the program gave it, for a send the stack
    /// serves ([`Hooks::send_datagram`]).
    given_control: Vec<u8>,
    /// Our duplicates of fds passed with `SCM_RIGHTS`, alive until sent.
    _passed: Vec<OwnedFd>,
    raw: RawMsgHdr,
}

/// State of a send.
pub struct SendOp {
    call: NetCall,
    fd: i32,
    flags: u32,
    msgs: Vec<OutMsg>,
    /// Messages completely sent.
    done: usize,
    /// Bytes of message `done` already sent (stream sockets).
    partial: usize,
    stream: bool,
    vec_ptr: u64,
    /// For sendto: the address pointer and length as given.
    addr_arg: (u64, i32),
    sent_lens: Vec<usize>,
}

/// Where one received message goes.
struct InMsg {
    /// The user's buffers.
    iov: Vec<Iovec>,
    /// Total capacity (capped).
    cap: usize,
    /// Where to write the source address and its length, if wanted.
    name_ptr: u64,
    name_len_ptr: u64,
    /// The address buffer's size; `None` for recvfrom, whose `*addrlen` the
    /// kernel reads only once it has a datagram.
    user_namelen: Option<u32>,
    /// `struct msghdr` location, for recvmsg/recvmmsg.
    hdr_ptr: Option<u64>,
    raw: RawMsgHdr,
}

/// What was received into one message.
struct GotMsg {
    /// The address buffer size the caller gave.
    user_namelen: u32,
    n: usize,
    data: Vec<u8>,
    name: (Vec<u8>, u32),
    control: Vec<u8>,
    flags: i32,
}

/// State of a receive.
pub struct RecvOp {
    call: NetCall,
    fd: i32,
    flags: u32,
    msgs: Vec<InMsg>,
    got: Vec<GotMsg>,
    /// `MSG_WAITALL` on a blocking stream socket: bytes so far.
    accumulated: Vec<u8>,
    stream: bool,
    vec_ptr: u64,
    /// recvfrom's raw address arguments.
    addr_args: (u64, u64),
}

type Res = Result<i64, i32>;

fn rec(notif_pid: u32, call: NetCall, args: Vec<String>, res: Res, started: Instant) -> Box<Record> {
    Box::new(Record::new(notif_pid, call.name(), args, res, started.elapsed()))
}

/// Answers `notif` with `res`; `None` if the target vanished.
fn answer(notif: Notification, res: Res) -> Option<()> {
    let r = match res {
        Ok(v) => notif.answer(v),
        Err(e) => notif.answer_errno(e),
    };
    match r {
        Ok(()) => Some(()),
        Err(NotifyError::Gone) => None,
        Err(e) => {
            tracing::warn!(error = %e, "answering a call failed");
            None
        }
    }
}

fn ptr(p: u64) -> String {
    if p == 0 {
        "NULL".into()
    } else {
        format!("{p:#x}")
    }
}

fn protocol(domain: i32, p: i32) -> String {
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return p.to_string();
    }
    match p {
        0 => "IPPROTO_IP".into(),
        libc::IPPROTO_TCP => "IPPROTO_TCP".into(),
        libc::IPPROTO_UDP => "IPPROTO_UDP".into(),
        libc::IPPROTO_ICMP => "IPPROTO_ICMP".into(),
        libc::IPPROTO_ICMPV6 => "IPPROTO_ICMPV6".into(),
        libc::IPPROTO_RAW => "IPPROTO_RAW".into(),
        other => other.to_string(),
    }
}

/// Reads a socket address argument with the kernel's checks: `EINVAL` for a
/// negative or oversized length, `EFAULT` for a bad pointer.
fn read_addr(notif: &Notification, ptr: u64, len: i32) -> Result<Vec<u8>, i32> {
    if len < 0 || len as usize > SOCKADDR_MAX {
        return Err(libc::EINVAL);
    }
    notif.read_bytes(ptr, len as u64, SOCKADDR_MAX).map_err(mem)
}

fn show_addr(bytes: &[u8]) -> String {
    match SockAddr::parse(bytes) {
        Some(a) => a.to_string(),
        None => Quoted::new(bytes).to_string(),
    }
}

/// The destination a send names, read from the program's memory: the
/// address of `sendto`, the first message's `msg_name` of `sendmsg` /
/// `sendmmsg`; `None` for other calls, no name, or memory that cannot be
/// read (the call itself then reports it). For policy only: what the call
/// sends is read again when it is served.
pub fn send_destination(notif: &Notification, sc: &Syscall) -> Option<Vec<u8>> {
    let hdr = match sc {
        Syscall::Sendto(c) if c.addr != 0 => return read_addr(notif, c.addr, c.addrlen).ok(),
        Syscall::Sendmsg(c) => read_msghdr(notif, c.msg).ok()?,
        Syscall::Sendmmsg(c) if c.vlen > 0 => {
            let b = notif.read_bytes(c.msgvec, MmsgHdr::SIZE as u64, MmsgHdr::SIZE).ok()?;
            MmsgHdr::parse(&b)?.hdr
        }
        _ => return None,
    };
    if hdr.name == 0 {
        return None;
    }
    read_addr(notif, hdr.name, hdr.namelen as i32).ok()
}

/// One non-blocking `connect` attempt with the caller's power.
fn connect_now(ctx: &Ctx, notif: &Notification, sock: BorrowedFd<'_>, addr: &[u8]) -> Result<(), i32> {
    let cwd = ctx.cwd_for(notif, addr)?;
    ctx.act_at(notif, addr, |a| {
        sys::with_nonblocking(sock, || a.connect(sock, addr, cwd.as_ref().map(|c| c.as_fd()))).map_err(errno_of)?
    })
}

/// Starts serving `sc`.
pub fn start(ctx: &mut Ctx, notif: Notification, sc: Syscall, hooks: &mut dyn Hooks) -> Progress {
    let started = Instant::now();
    let pid = notif.pid;
    let call = sc.call();
    macro_rules! finish {
        ($args:expr, $res:expr) => {{
            let res: Res = $res;
            match answer(notif, res) {
                Some(()) => Progress::Done(rec(pid, call, $args, res, started)),
                None => Progress::Vanished,
            }
        }};
    }
    // Every call but socket/socketpair names a socket of the target.
    let dup = |fd: i32| ctx.target_socket(&notif, fd);
    match sc {
        Syscall::Socket(c) => {
            let args = vec![socket_domain(c.domain), sock_type(c.ty), protocol(c.domain, c.protocol)];
            let created = ctx.act(&notif, |a| a.socket(c.domain, c.ty & !libc::SOCK_CLOEXEC, c.protocol));
            match created {
                Ok(sock) => {
                    let how = AddFd {
                        cloexec: c.ty & libc::SOCK_CLOEXEC != 0,
                        at: None,
                    };
                    match notif.answer_with_fd(sock.as_fd(), how) {
                        Ok(n) => Progress::Done(rec(pid, call, args, Ok(n as i64), started)),
                        Err(_) => Progress::Vanished,
                    }
                }
                Err(e) => finish!(args, Err(e)),
            }
        }
        Syscall::Socketpair(c) => {
            let mut args = vec![socket_domain(c.domain), sock_type(c.ty), protocol(c.domain, c.protocol)];
            // The result array must be writable before anything is installed.
            if let Err(e) = notif.write_bytes(c.sv, &[0u8; 8]) {
                args.push(ptr(c.sv));
                return finish!(args, Err(mem(e)));
            }
            let pair = ctx.act(&notif, |a| {
                a.socketpair(c.domain, c.ty & !libc::SOCK_CLOEXEC, c.protocol)
            });
            let (a, b) = match pair {
                Ok(p) => p,
                Err(e) => {
                    args.push(ptr(c.sv));
                    return finish!(args, Err(e));
                }
            };
            let how = AddFd {
                cloexec: c.ty & libc::SOCK_CLOEXEC != 0,
                at: None,
            };
            let (Ok(fa), Ok(fb)) = (notif.add_fd(a.as_fd(), how), notif.add_fd(b.as_fd(), how)) else {
                return Progress::Vanished;
            };
            let mut sv = fa.to_ne_bytes().to_vec();
            sv.extend_from_slice(&fb.to_ne_bytes());
            args.push(format!("[{fa}, {fb}]"));
            let res = notif.write_bytes(c.sv, &sv).map(|()| 0).map_err(mem);
            finish!(args, res)
        }
        Syscall::Bind(_) => bind(ctx, notif, sc, started),
        Syscall::Connect(c) => {
            let shown = |addr: &[u8]| vec![c.fd.to_string(), show_addr(addr), c.addrlen.to_string()];
            let addr = match read_addr(&notif, c.addr, c.addrlen) {
                Ok(a) => a,
                Err(e) => return finish!(vec![c.fd.to_string(), ptr(c.addr), c.addrlen.to_string()], Err(e)),
            };
            let (_pidfd, sock) = match dup(c.fd) {
                Ok(s) => s,
                Err(e) => return finish!(shown(&addr), Err(e)),
            };
            let blocking = may_block(sock.as_fd(), 0);
            let attempt = connect_now(ctx, &notif, sock.as_fd(), &addr);
            let parsed = SockAddr::parse(&addr);
            let interest = match attempt {
                // EALREADY: a blocking connect restarted after a signal waits
                // for the handshake already under way, as in the kernel.
                Err(libc::EINPROGRESS) | Err(libc::EALREADY) if blocking => Interest::Write,
                Err(libc::EAGAIN) if blocking => Interest::Retry,
                other => {
                    let args = shown(&addr);
                    return match answer(notif, other.map(|()| 0)) {
                        Some(()) => {
                            let mut r = rec(pid, call, args, other.map(|()| 0), started);
                            r.addr = parsed;
                            Progress::Done(r)
                        }
                        None => Progress::Vanished,
                    };
                }
            };
            let deadline = timeout_deadline(sock.as_fd(), true, started);
            Progress::Parked(Box::new(Parked {
                notif,
                sock,
                op: Op::Connect {
                    fd: c.fd,
                    addr,
                    addrlen: c.addrlen,
                },
                interest,
                started,
                deadline,
            }))
        }
        Syscall::Listen(c) => {
            let args = vec![c.fd.to_string(), c.backlog.to_string()];
            let res = dup(c.fd).and_then(|(_p, s)| ctx.act(&notif, |a| a.listen(s.as_fd(), c.backlog)).map(|()| 0));
            finish!(args, res)
        }
        Syscall::Shutdown(c) => {
            let args = vec![c.fd.to_string(), shutdown_how(c.how)];
            let res = dup(c.fd).and_then(|(_p, s)| ctx.act(&notif, |a| a.shutdown(s.as_fd(), c.how)).map(|()| 0));
            finish!(args, res)
        }
        Syscall::Getsockname(_) | Syscall::Getpeername(_) => names(ctx, notif, sc, started),
        Syscall::Getsockopt(c) => {
            let mut args = vec![
                c.fd.to_string(),
                sockopt_level(c.level),
                sockopt_name(c.level, c.optname),
            ];
            let res = (|| {
                let len = notif.read_u32(c.optlen).map_err(mem)? as i32;
                if len < 0 {
                    return Err(libc::EINVAL);
                }
                let cap = (len as usize).min(OPTVAL_MAX);
                // Socket- and TCP-level options only return a value; other
                // levels have options that also read one (multicast filters).
                let output_only = matches!(c.level, libc::SOL_SOCKET | libc::SOL_TCP);
                let mut buf = if c.optval == 0 || cap == 0 || output_only {
                    vec![0u8; cap]
                } else {
                    notif.read_bytes(c.optval, cap as u64, OPTVAL_MAX).map_err(mem)?
                };
                let (_p, s) = dup(c.fd)?;
                // SO_PEERCRED and the like answer in the caller's user
                // namespace: through the actor too.
                let got = ctx.act(&notif, |a| a.getsockopt(s.as_fd(), c.level, c.optname, &mut buf))?;
                let shown = (got as usize).min(buf.len());
                let len_bytes = got.to_ne_bytes();
                notif
                    .write_many(&[(c.optval, &buf[..shown]), (c.optlen, &len_bytes)])
                    .map_err(mem)?;
                Ok((buf[..shown].to_vec(), got))
            })();
            match &res {
                Ok((val, len)) => {
                    args.push(
                        SockoptValue {
                            level: c.level,
                            name: c.optname,
                            bytes: val,
                        }
                        .to_string(),
                    );
                    args.push(format!("[{len}]"));
                }
                Err(_) => {
                    args.push(ptr(c.optval));
                    args.push(ptr(c.optlen));
                }
            }
            finish!(args, res.map(|_| 0))
        }
        Syscall::Setsockopt(c) => {
            let mut args = vec![
                c.fd.to_string(),
                sockopt_level(c.level),
                sockopt_name(c.level, c.optname),
            ];
            let res = (|| {
                if c.optlen < 0 || c.optlen as usize > OPTVAL_MAX {
                    return Err(libc::EINVAL);
                }
                let val = notif.read_bytes(c.optval, c.optlen as u64, OPTVAL_MAX).map_err(mem)?;
                let (pidfd, s) = dup(c.fd)?;
                let val = translate_sockopt(&notif, pidfd.as_fd(), c.level, c.optname, val)?;
                ctx.act(&notif, |a| a.setsockopt(s.as_fd(), c.level, c.optname, &val.opt()))?;
                Ok(val.shown)
            })();
            match &res {
                Ok(shown) => args.push(
                    SockoptValue {
                        level: c.level,
                        name: c.optname,
                        bytes: shown,
                    }
                    .to_string(),
                ),
                Err(_) => args.push(ptr(c.optval)),
            }
            args.push(c.optlen.to_string());
            finish!(args, res.map(|_| 0))
        }
        Syscall::Accept(_) | Syscall::Accept4(_) => {
            let (fd, addr_ptr, len_ptr, flags) = match sc {
                Syscall::Accept(c) => (c.fd, c.addr, c.addrlen, 0),
                Syscall::Accept4(c) => (c.fd, c.addr, c.addrlen, c.flags),
                _ => unreachable!("matched above"),
            };
            let mut op = AcceptOp {
                call,
                fd,
                flags,
                addr_ptr,
                len_ptr,
                user_len: 0,
            };
            let prep = (|| {
                if flags & !(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) != 0 {
                    return Err(libc::EINVAL);
                }
                if addr_ptr != 0 {
                    let l = notif.read_u32(len_ptr).map_err(mem)?;
                    if (l as i32) < 0 {
                        return Err(libc::EINVAL);
                    }
                    op.user_len = l;
                }
                dup(fd)
            })();
            match prep {
                Err(e) => finish!(op.render(None), Err(e)),
                Ok((_p, sock)) => resume_op(ctx, notif, sock, Op::Accept(op), started, hooks),
            }
        }
        Syscall::Sendto(_) | Syscall::Sendmsg(_) | Syscall::Sendmmsg(_) => match prepare_send(ctx, &notif, sc) {
            Err((e, args)) => finish!(args, Err(e)),
            Ok((op, sock))
                if op.msgs.iter().any(|m| carries_credentials(&m.control))
                    // A user-space UDP socket ignores them, as Linux's UDP
                    // does: its sends are the stack's.
                    && hooks.datagram_head(sock.as_fd(), false).is_none() =>
            {
                // SCM_CREDENTIALS names the sender's own pid, which only the
                // program itself may send (the kernel checks it against the
                // sender). Left to the kernel: whatever the message holds by
                // the time the kernel reads it again, the kernel judges it
                // with the program's own credentials, so the race gains
                // nothing; the trace shows the call without its result.
                drop(sock);
                match notif.answer_continue() {
                    Ok(()) => Progress::Done(Box::new(Record::continued(
                        pid,
                        call.name(),
                        sc.raw_args(),
                        started.elapsed(),
                    ))),
                    Err(_) => Progress::Vanished,
                }
            }
            Ok((op, sock)) => resume_op(ctx, notif, sock, Op::Send(op), started, hooks),
        },
        Syscall::Recvfrom(_) | Syscall::Recvmsg(_) | Syscall::Recvmmsg(_) => match prepare_recv(ctx, &notif, sc) {
            Err((e, args)) => finish!(args, Err(e)),
            Ok((op, sock)) => resume_op(ctx, notif, sock, Op::Recv(op), started, hooks),
        },
    }
}

/// Whether control data holds an `SCM_CREDENTIALS` message.
fn carries_credentials(control: &[u8]) -> bool {
    !control.is_empty()
        && sys::parse_cmsgs(control)
            .iter()
            .any(|(level, ty, _)| *level == libc::SOL_SOCKET && *ty == libc::SCM_CREDENTIALS)
}

/// `bind`, with relative `AF_UNIX` paths resolved in the target's directory.
fn bind(ctx: &mut Ctx, notif: Notification, sc: Syscall, started: Instant) -> Progress {
    let Syscall::Bind(c) = sc else {
        unreachable!("called for bind only")
    };
    let pid = notif.pid;
    let res = (|| {
        let addr = read_addr(&notif, c.addr, c.addrlen)?;
        let (_p, s) = ctx.target_socket(&notif, c.fd)?;
        let r = ctx.cwd_for(&notif, &addr).and_then(|cwd| {
            let mut actor = ctx.actor_at(&notif, &addr)?;
            let umask = actor.creds.umask;
            actor
                .act()
                .bind(s.as_fd(), &addr, cwd.as_ref().map(|c| c.as_fd()), umask)
        });
        Ok((addr, r))
    })();
    let (args, res, addr) = match res {
        Ok((addr, r)) => (
            vec![c.fd.to_string(), show_addr(&addr), c.addrlen.to_string()],
            r.map(|()| 0),
            SockAddr::parse(&addr),
        ),
        Err(e) => (vec![c.fd.to_string(), ptr(c.addr), c.addrlen.to_string()], Err(e), None),
    };
    match answer(notif, res) {
        Some(()) => {
            let mut r = rec(pid, NetCall::Bind, args, res, started);
            r.addr = addr;
            Progress::Done(r)
        }
        None => Progress::Vanished,
    }
}

/// `getsockname`/`getpeername`.
fn names(ctx: &Ctx, notif: Notification, sc: Syscall, started: Instant) -> Progress {
    let (fd, addr_ptr, len_ptr, peer) = match sc {
        Syscall::Getsockname(c) => (c.fd, c.addr, c.addrlen, false),
        Syscall::Getpeername(c) => (c.fd, c.addr, c.addrlen, true),
        _ => unreachable!("called for getsockname/getpeername only"),
    };
    let pid = notif.pid;
    let res = (|| {
        let user_len = notif.read_u32(len_ptr).map_err(mem)?;
        if (user_len as i32) < 0 {
            return Err(libc::EINVAL);
        }
        let (_p, s) = ctx.target_socket(&notif, fd)?;
        let (addr, len) = sys::sockname(s.as_fd(), peer).map_err(errno_of)?;
        let n = (user_len as usize).min(addr.len());
        let len_bytes = len.to_ne_bytes();
        notif
            .write_many(&[(addr_ptr, &addr[..n]), (len_ptr, &len_bytes)])
            .map_err(mem)?;
        Ok((addr, user_len, len))
    })();
    let call = sc.call();
    let (args, res, parsed) = match res {
        Ok((addr, ul, len)) => (
            vec![fd.to_string(), show_addr(&addr), format!("[{ul} => {len}]")],
            Ok(0),
            SockAddr::parse(&addr),
        ),
        Err(e) => (vec![fd.to_string(), ptr(addr_ptr), ptr(len_ptr)], Err(e), None),
    };
    match answer(notif, res) {
        Some(()) => {
            let mut r = rec(pid, call, args, res, started);
            r.addr = parsed;
            Progress::Done(r)
        }
        None => Progress::Vanished,
    }
}

/// An option value with what names the target's memory or fds replaced by
/// the supervisor's copies; the actor points the value at them.
struct Translated {
    /// The value as the program gave it.
    shown: Vec<u8>,
    /// The filter a `struct sock_fprog` points at.
    prog: Option<Vec<u8>>,
    /// The fd an option names.
    fd: Option<OwnedFd>,
}

impl Translated {
    fn opt(&self) -> OptVal<'_> {
        match (&self.prog, &self.fd) {
            (Some(prog), _) => OptVal::Filter {
                fprog: &self.shown,
                prog,
            },
            (None, Some(fd)) => OptVal::Fd {
                val: &self.shown,
                fd: fd.as_fd(),
            },
            (None, None) => OptVal::Bytes(&self.shown),
        }
    }
}

/// Options whose value holds a pointer or an fd of the target are rewritten to
/// the supervisor's copy; everything else is passed as is.
fn translate_sockopt(
    notif: &Notification,
    pidfd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    val: Vec<u8>,
) -> Result<Translated, i32> {
    if level == libc::SOL_SOCKET && (name == libc::SO_ATTACH_FILTER || name == libc::SO_ATTACH_REUSEPORT_CBPF) {
        // struct sock_fprog { unsigned short len; struct sock_filter *filter; }
        if val.len() < 16 {
            return Err(libc::EINVAL);
        }
        let n = u16::from_ne_bytes([val[0], val[1]]) as u64;
        let fptr = u64::from_ne_bytes(val[8..16].try_into().expect("8 bytes"));
        if n == 0 || n > 4096 {
            return Err(libc::EINVAL);
        }
        let prog = notif.read_bytes(fptr, n * 8, 4096 * 8).map_err(mem)?;
        return Ok(Translated {
            shown: val,
            prog: Some(prog),
            fd: None,
        });
    }
    if level == libc::SOL_SOCKET && (name == libc::SO_ATTACH_BPF || name == libc::SO_ATTACH_REUSEPORT_EBPF) {
        if val.len() < 4 {
            return Err(libc::EINVAL);
        }
        let their = i32::from_ne_bytes(val[..4].try_into().expect("4 bytes"));
        let ours = notif.dup_fd(pidfd, their)?;
        return Ok(Translated {
            shown: val,
            prog: None,
            fd: Some(ours),
        });
    }
    if level == libc::SOL_TCP && name == 35 {
        // TCP_ZEROCOPY_RECEIVE maps pages into the caller's address space:
        // the supervisor's, not the target's. Refuse it.
        return Err(libc::EOPNOTSUPP);
    }
    Ok(Translated {
        shown: val,
        prog: None,
        fd: None,
    })
}

fn is_stream(sock: BorrowedFd<'_>) -> bool {
    sys::getsockopt_int(sock, libc::SOL_SOCKET, libc::SO_TYPE).is_ok_and(|t| t == libc::SOCK_STREAM)
}

/// Reads the data an iovec list points at, up to [`DATA_MAX`] in all.
fn read_iov(notif: &Notification, iov: &[Iovec]) -> Result<Vec<u8>, i32> {
    let mut total: u64 = 0;
    for v in iov {
        total = total.checked_add(v.len).ok_or(libc::EINVAL)?;
    }
    if total > isize::MAX as u64 {
        return Err(libc::EINVAL);
    }
    let mut data = Vec::with_capacity((total as usize).min(DATA_MAX));
    for v in iov {
        let room = DATA_MAX - data.len();
        if room == 0 {
            break;
        }
        let take = (v.len as usize).min(room);
        if take > 0 {
            data.extend_from_slice(&notif.read_bytes(v.base, take as u64, DATA_MAX).map_err(mem)?);
        }
    }
    Ok(data)
}

fn read_msghdr(notif: &Notification, at: u64) -> Result<RawMsgHdr, i32> {
    let b = notif
        .read_bytes(at, RawMsgHdr::SIZE as u64, RawMsgHdr::SIZE)
        .map_err(mem)?;
    RawMsgHdr::parse(&b).ok_or(libc::EFAULT)
}

fn read_iovecs(notif: &Notification, h: &RawMsgHdr) -> Result<Vec<Iovec>, i32> {
    if h.iovlen > IOV_MAX as u64 {
        return Err(libc::EMSGSIZE);
    }
    let b = notif
        .read_bytes(h.iov, h.iovlen * Iovec::SIZE as u64, IOV_MAX * Iovec::SIZE)
        .map_err(mem)?;
    Ok(Iovec::parse_list(&b))
}

/// Builds one outgoing message from a `msghdr`, translating `SCM_RIGHTS`.
fn out_msg(notif: &Notification, pidfd: BorrowedFd<'_>, h: RawMsgHdr) -> Result<OutMsg, i32> {
    let name = if h.name != 0 {
        Some(read_addr(notif, h.name, h.namelen as i32)?)
    } else {
        None
    };
    let iov = read_iovecs(notif, &h)?;
    let data = read_iov(notif, &iov)?;
    if h.controllen > CMSG_MAX as u64 {
        return Err(libc::ENOBUFS);
    }
    let raw_control = if h.controllen > 0 {
        notif.read_bytes(h.control, h.controllen, CMSG_MAX).map_err(mem)?
    } else {
        Vec::new()
    };
    let mut passed = Vec::new();
    let control = if raw_control.is_empty() {
        Vec::new()
    } else {
        let mut msgs = sys::parse_cmsgs(&raw_control);
        for (level, ty, data) in msgs.iter_mut() {
            if *level == libc::SOL_SOCKET && *ty == libc::SCM_RIGHTS {
                let mut out = Vec::with_capacity(data.len());
                for chunk in data.chunks_exact(4) {
                    let theirs = i32::from_ne_bytes(chunk.try_into().expect("4 bytes"));
                    let ours = notif.dup_fd(pidfd, theirs)?;
                    out.extend_from_slice(&std::os::fd::AsRawFd::as_raw_fd(&ours).to_ne_bytes());
                    passed.push(ours);
                }
                *data = out;
            }
        }
        sys::build_cmsgs(&msgs)
    };
    Ok(OutMsg {
        name,
        iov_lens: iov.iter().map(|v| v.len).collect(),
        data,
        control,
        given_control: raw_control,
        _passed: passed,
        raw: h,
    })
}

type Prep<T> = Result<(T, OwnedFd), (i32, Vec<String>)>;

fn prepare_send(ctx: &Ctx, notif: &Notification, sc: Syscall) -> Prep<SendOp> {
    let fail_args = |fd: i32, rest: Vec<String>| {
        let mut a = vec![fd.to_string()];
        a.extend(rest);
        a
    };
    match sc {
        Syscall::Sendto(c) => {
            let raw = vec![
                ptr(c.buf),
                c.len.to_string(),
                msg_flags(c.flags),
                ptr(c.addr),
                c.addrlen.to_string(),
            ];
            let go = || -> Result<(SendOp, OwnedFd), i32> {
                let name = if c.addr != 0 {
                    Some(read_addr(notif, c.addr, c.addrlen)?)
                } else {
                    None
                };
                let take = (c.len as usize).min(DATA_MAX) as u64;
                if c.len > isize::MAX as u64 {
                    return Err(libc::EINVAL);
                }
                let data = notif.read_bytes(c.buf, take, DATA_MAX).map_err(mem)?;
                let (_p, sock) = ctx.target_socket(notif, c.fd)?;
                let msg = OutMsg {
                    name,
                    iov_lens: vec![c.len],
                    data,
                    control: Vec::new(),
                    given_control: Vec::new(),
                    _passed: Vec::new(),
                    raw: RawMsgHdr::default(),
                };
                Ok((
                    SendOp::new(
                        NetCall::Sendto,
                        c.fd,
                        c.flags,
                        vec![msg],
                        sock.as_fd(),
                        0,
                        (c.addr, c.addrlen),
                    ),
                    sock,
                ))
            };
            go().map_err(|e| (e, fail_args(c.fd, raw)))
        }
        Syscall::Sendmsg(c) => {
            let raw = vec![ptr(c.msg), msg_flags(c.flags)];
            let go = || -> Result<(SendOp, OwnedFd), i32> {
                let h = read_msghdr(notif, c.msg)?;
                let (pidfd, sock) = ctx.target_socket(notif, c.fd)?;
                let m = out_msg(notif, pidfd.as_fd(), h)?;
                Ok((
                    SendOp::new(NetCall::Sendmsg, c.fd, c.flags, vec![m], sock.as_fd(), 0, (0, 0)),
                    sock,
                ))
            };
            go().map_err(|e| (e, fail_args(c.fd, raw)))
        }
        Syscall::Sendmmsg(c) => {
            let raw = vec![ptr(c.msgvec), c.vlen.to_string(), msg_flags(c.flags)];
            let go = || -> Result<(SendOp, OwnedFd), i32> {
                let vlen = (c.vlen as usize).min(IOV_MAX);
                let vec = notif
                    .read_bytes(c.msgvec, (vlen * MmsgHdr::SIZE) as u64, IOV_MAX * MmsgHdr::SIZE)
                    .map_err(mem)?;
                let (pidfd, sock) = ctx.target_socket(notif, c.fd)?;
                let mut msgs = Vec::with_capacity(vlen);
                let mut total = 0;
                for chunk in vec.chunks_exact(MmsgHdr::SIZE) {
                    let h = MmsgHdr::parse(chunk).ok_or(libc::EFAULT)?.hdr;
                    let m = out_msg(notif, pidfd.as_fd(), h)?;
                    total += m.data.len();
                    msgs.push(m);
                    // Copy at most about DATA_MAX per call: sending fewer
                    // messages than asked is a result sendmmsg may give.
                    if total >= DATA_MAX {
                        break;
                    }
                }
                Ok((
                    SendOp::new(NetCall::Sendmmsg, c.fd, c.flags, msgs, sock.as_fd(), c.msgvec, (0, 0)),
                    sock,
                ))
            };
            go().map_err(|e| (e, fail_args(c.fd, raw)))
        }
        _ => unreachable!("called for sends only"),
    }
}

impl SendOp {
    fn new(
        call: NetCall,
        fd: i32,
        flags: u32,
        msgs: Vec<OutMsg>,
        sock: BorrowedFd<'_>,
        vec_ptr: u64,
        addr_arg: (u64, i32),
    ) -> SendOp {
        SendOp {
            call,
            fd,
            flags,
            msgs,
            done: 0,
            partial: 0,
            stream: is_stream(sock),
            vec_ptr,
            addr_arg,
            sent_lens: Vec::new(),
        }
    }

    fn render(&self) -> Vec<String> {
        let mut a = vec![self.fd.to_string()];
        let shown_msg = |i: usize, m: &OutMsg| -> MsgHdr {
            let sent = self.sent_lens.get(i).copied().unwrap_or(0);
            let mut off = 0usize;
            let iov = m
                .iov_lens
                .iter()
                .map(|&l| {
                    let start = off.min(m.data.len());
                    let end = (off + l as usize).min(m.data.len()).min(start + 32);
                    off += l as usize;
                    let _ = sent;
                    (m.data[start..end].to_vec(), l)
                })
                .collect();
            MsgHdr {
                name: m.name.as_deref().and_then(SockAddr::parse),
                namelen: m.raw.namelen,
                iov,
                iovlen: m.raw.iovlen,
                controllen: m.raw.controllen,
                flags: m.raw.flags,
            }
        };
        match self.call {
            NetCall::Sendto => {
                let m = &self.msgs[0];
                a.push(Quoted::new(&m.data).to_string());
                a.push(m.iov_lens[0].to_string());
                a.push(msg_flags(self.flags));
                a.push(match &m.name {
                    Some(n) => show_addr(n),
                    None => ptr(self.addr_arg.0),
                });
                a.push(self.addr_arg.1.to_string());
            }
            NetCall::Sendmsg => {
                a.push(shown_msg(0, &self.msgs[0]).to_string());
                a.push(msg_flags(self.flags));
            }
            _ => {
                let list: Vec<String> = self
                    .msgs
                    .iter()
                    .enumerate()
                    .take(4)
                    .map(|(i, m)| {
                        format!(
                            "{{msg_hdr={}, msg_len={}}}",
                            shown_msg(i, m),
                            self.sent_lens.get(i).copied().unwrap_or(0)
                        )
                    })
                    .collect();
                a.push(format!("[{}]", list.join(", ")));
                a.push(self.msgs.len().to_string());
                a.push(msg_flags(self.flags));
            }
        }
        a
    }
}

fn prepare_recv(ctx: &Ctx, notif: &Notification, sc: Syscall) -> Prep<RecvOp> {
    let fail = |fd: i32, rest: Vec<String>| {
        let mut a = vec![fd.to_string()];
        a.extend(rest);
        a
    };
    let in_msg = |h: RawMsgHdr, hdr_ptr: u64| -> Result<InMsg, i32> {
        let iov = read_iovecs(notif, &h)?;
        let mut total: u64 = 0;
        for v in &iov {
            total = total.checked_add(v.len).ok_or(libc::EINVAL)?;
        }
        if h.controllen > CMSG_MAX as u64 {
            return Err(libc::ENOBUFS);
        }
        Ok(InMsg {
            iov,
            cap: (total as usize).min(DATA_MAX),
            name_ptr: h.name,
            name_len_ptr: hdr_ptr + RawMsgHdr::NAMELEN_OFFSET,
            user_namelen: Some(h.namelen),
            hdr_ptr: Some(hdr_ptr),
            raw: h,
        })
    };
    match sc {
        Syscall::Recvfrom(c) => {
            let raw = vec![
                ptr(c.buf),
                c.len.to_string(),
                msg_flags(c.flags),
                ptr(c.addr),
                ptr(c.addrlen),
            ];
            let go = || -> Result<(RecvOp, OwnedFd), i32> {
                if c.len > isize::MAX as u64 {
                    return Err(libc::EINVAL);
                }
                let (_p, sock) = ctx.target_socket(notif, c.fd)?;
                let m = InMsg {
                    iov: vec![Iovec {
                        base: c.buf,
                        len: c.len,
                    }],
                    cap: (c.len as usize).min(DATA_MAX),
                    name_ptr: c.addr,
                    name_len_ptr: c.addrlen,
                    user_namelen: None,
                    hdr_ptr: None,
                    raw: RawMsgHdr::default(),
                };
                Ok((
                    RecvOp::new(
                        NetCall::Recvfrom,
                        c.fd,
                        c.flags,
                        vec![m],
                        sock.as_fd(),
                        0,
                        (c.addr, c.addrlen),
                    ),
                    sock,
                ))
            };
            go().map_err(|e| (e, fail(c.fd, raw)))
        }
        Syscall::Recvmsg(c) => {
            let raw = vec![ptr(c.msg), msg_flags(c.flags)];
            let go = || -> Result<(RecvOp, OwnedFd), i32> {
                let h = read_msghdr(notif, c.msg)?;
                let m = in_msg(h, c.msg)?;
                let (_p, sock) = ctx.target_socket(notif, c.fd)?;
                Ok((
                    RecvOp::new(NetCall::Recvmsg, c.fd, c.flags, vec![m], sock.as_fd(), 0, (0, 0)),
                    sock,
                ))
            };
            go().map_err(|e| (e, fail(c.fd, raw)))
        }
        Syscall::Recvmmsg(c) => {
            let raw = vec![ptr(c.msgvec), c.vlen.to_string(), msg_flags(c.flags), ptr(c.timeout)];
            let go = || -> Result<(RecvOp, OwnedFd), i32> {
                let vlen = (c.vlen as usize).min(IOV_MAX);
                let vec = notif
                    .read_bytes(c.msgvec, (vlen * MmsgHdr::SIZE) as u64, IOV_MAX * MmsgHdr::SIZE)
                    .map_err(mem)?;
                let mut msgs = Vec::with_capacity(vlen);
                for (i, chunk) in vec.chunks_exact(MmsgHdr::SIZE).enumerate() {
                    let h = MmsgHdr::parse(chunk).ok_or(libc::EFAULT)?.hdr;
                    msgs.push(in_msg(h, c.msgvec + (i * MmsgHdr::SIZE) as u64)?);
                }
                let (_p, sock) = ctx.target_socket(notif, c.fd)?;
                Ok((
                    RecvOp::new(NetCall::Recvmmsg, c.fd, c.flags, msgs, sock.as_fd(), c.msgvec, (0, 0)),
                    sock,
                ))
            };
            go().map_err(|e| (e, fail(c.fd, raw)))
        }
        _ => unreachable!("called for receives only"),
    }
}

impl RecvOp {
    fn new(
        call: NetCall,
        fd: i32,
        flags: u32,
        msgs: Vec<InMsg>,
        sock: BorrowedFd<'_>,
        vec_ptr: u64,
        addr_args: (u64, u64),
    ) -> RecvOp {
        RecvOp {
            call,
            fd,
            flags,
            msgs,
            got: Vec::new(),
            accumulated: Vec::new(),
            stream: is_stream(sock),
            vec_ptr,
            addr_args,
        }
    }

    fn render(&self, res: &Res) -> Vec<String> {
        let mut a = vec![self.fd.to_string()];
        let hdr = |i: usize| -> MsgHdr {
            let m = &self.msgs[i];
            let g = self.got.get(i);
            let mut iov = Vec::new();
            let mut off = 0usize;
            for v in &m.iov {
                let data = g.map(|g| {
                    let s = off.min(g.data.len());
                    let e = (off + v.len as usize).min(g.data.len()).min(s + 32);
                    g.data[s..e].to_vec()
                });
                off += v.len as usize;
                iov.push((data.unwrap_or_default(), v.len));
            }
            MsgHdr {
                name: g.and_then(|g| SockAddr::parse(&g.name.0)).filter(|_| m.name_ptr != 0),
                namelen: g.map(|g| g.name.1).or(m.user_namelen).unwrap_or(0),
                iov,
                iovlen: m.raw.iovlen,
                controllen: g.map(|g| g.control.len() as u64).unwrap_or(m.raw.controllen),
                flags: g.map(|g| g.flags).unwrap_or(0),
            }
        };
        match self.call {
            NetCall::Recvfrom => {
                let m = &self.msgs[0];
                match (res, self.got.first()) {
                    (Ok(_), Some(g)) => a.push(Quoted::new(&g.data).to_string()),
                    _ => a.push(ptr(m.iov[0].base)),
                }
                a.push(m.iov[0].len.to_string());
                a.push(msg_flags(self.flags));
                match (self.addr_args.0, self.got.first()) {
                    (0, _) => {
                        a.push("NULL".into());
                        a.push("NULL".into());
                    }
                    (_, Some(g)) => {
                        a.push(show_addr(&g.name.0));
                        a.push(format!("[{} => {}]", g.user_namelen, g.name.1));
                    }
                    (p, None) => {
                        a.push(ptr(p));
                        a.push(ptr(self.addr_args.1));
                    }
                }
            }
            NetCall::Recvmsg => {
                a.push(hdr(0).to_string());
                a.push(msg_flags(self.flags));
            }
            _ => {
                let n = self.got.len().max(1).min(self.msgs.len());
                let list: Vec<String> = (0..n)
                    .take(4)
                    .map(|i| {
                        format!(
                            "{{msg_hdr={}, msg_len={}}}",
                            hdr(i),
                            self.got.get(i).map(|g| g.n).unwrap_or(0)
                        )
                    })
                    .collect();
                a.push(format!("[{}]", list.join(", ")));
                a.push(self.msgs.len().to_string());
                a.push(msg_flags(self.flags));
                a.push("NULL".into());
            }
        }
        a
    }
}

impl AcceptOp {
    fn render(&self, got: Option<&(Vec<u8>, u32)>) -> Vec<String> {
        let mut a = vec![self.fd.to_string()];
        match (self.addr_ptr, got) {
            (0, _) => {
                a.push("NULL".into());
                a.push("NULL".into());
            }
            (_, Some((addr, len))) => {
                a.push(show_addr(addr));
                a.push(format!("[{} => {}]", self.user_len, len));
            }
            (p, None) => {
                a.push(ptr(p));
                a.push(ptr(self.len_ptr));
            }
        }
        if self.call == NetCall::Accept4 {
            a.push(accept_flags(self.flags));
        }
        a
    }
}

/// Tries (again) to complete a call that may block.
pub fn resume_op(
    ctx: &mut Ctx,
    notif: Notification,
    sock: OwnedFd,
    op: Op,
    started: Instant,
    hooks: &mut dyn Hooks,
) -> Progress {
    let pid = notif.pid;
    match op {
        Op::Connect { fd, addr, addrlen } => {
            // The handshake finished (or failed): its outcome is SO_ERROR.
            let res = match sys::getsockopt_int(sock.as_fd(), libc::SOL_SOCKET, libc::SO_ERROR) {
                Ok(0) => match sys::sockname(sock.as_fd(), true) {
                    Ok(_) => Ok(0),
                    // Not connected yet and no error: still in progress.
                    Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                        match connect_now(ctx, &notif, sock.as_fd(), &addr) {
                            Err(libc::EALREADY) | Err(libc::EINPROGRESS) | Err(libc::EAGAIN) => {
                                let interest = Interest::Write;
                                let deadline = timeout_deadline(sock.as_fd(), true, started);
                                return Progress::Parked(Box::new(Parked {
                                    notif,
                                    sock,
                                    op: Op::Connect { fd, addr, addrlen },
                                    interest,
                                    started,
                                    deadline,
                                }));
                            }
                            Err(libc::EISCONN) => Ok(0),
                            other => other.map(|()| 0),
                        }
                    }
                    Err(e) => Err(errno_of(e)),
                },
                Ok(e) => Err(e),
                Err(e) => Err(errno_of(e)),
            };
            let args = vec![fd.to_string(), show_addr(&addr), addrlen.to_string()];
            match answer(notif, res) {
                Some(()) => {
                    let mut r = rec(pid, NetCall::Connect, args, res, started);
                    r.addr = SockAddr::parse(&addr);
                    Progress::Done(r)
                }
                None => Progress::Vanished,
            }
        }
        Op::Accept(op) => resume_accept(ctx, notif, sock, op, started),
        Op::Send(op) => resume_send(ctx, notif, sock, op, started, hooks),
        Op::Recv(op) => resume_recv(ctx, notif, sock, op, started, hooks),
    }
}

fn park(notif: Notification, sock: OwnedFd, op: Op, interest: Interest, started: Instant, send: bool) -> Progress {
    let deadline = timeout_deadline(sock.as_fd(), send, started);
    Progress::Parked(Box::new(Parked {
        notif,
        sock,
        op,
        interest,
        started,
        deadline,
    }))
}

fn resume_accept(ctx: &mut Ctx, notif: Notification, sock: OwnedFd, op: AcceptOp, started: Instant) -> Progress {
    let pid = notif.pid;
    let id = sys::file_id(sock.as_fd()).ok();
    let got = match id.and_then(|id| ctx.stash.take_accepted(id)) {
        Some(a) => Ok((a.fd, a.addr.0, a.addr.1)),
        None => ctx.act(&notif, |a| {
            sys::with_nonblocking(sock.as_fd(), || a.accept4(sock.as_fd(), op.flags & libc::SOCK_NONBLOCK))
                .map_err(errno_of)?
        }),
    };
    let (newfd, addr, len) = match got {
        Ok(g) => g,
        Err(libc::EAGAIN) if may_block(sock.as_fd(), 0) => {
            return park(notif, sock, Op::Accept(op), Interest::Read, started, false)
        }
        Err(e) => {
            let args = op.render(None);
            return match answer(notif, Err(e)) {
                Some(()) => Progress::Done(rec(pid, op.call, args, Err(e), started)),
                None => Progress::Vanished,
            };
        }
    };
    let wrote = if op.addr_ptr != 0 {
        let n = (op.user_len as usize).min(addr.len());
        notif.write_many(&[(op.addr_ptr, &addr[..n]), (op.len_ptr, &len.to_ne_bytes())])
    } else {
        Ok(())
    };
    let stash_it = |ctx: &mut Ctx, newfd: OwnedFd, addr: Vec<u8>| {
        if let (Some(id), Ok(holder)) = (id, sock.try_clone()) {
            ctx.stash.put_accepted(
                id,
                holder,
                Accepted {
                    fd: newfd,
                    addr: (addr, len),
                },
            );
        }
    };
    if let Err(e) = wrote {
        if e == joyride_notify::MemError::Gone {
            stash_it(ctx, newfd, addr);
            return Progress::Vanished;
        }
        // Like Linux, a bad address loses the connection... unless we keep it:
        // keep it for the next accept, and report EFAULT now.
        stash_it(ctx, newfd, addr);
        let args = op.render(None);
        return match answer(notif, Err(libc::EFAULT)) {
            Some(()) => Progress::Done(rec(pid, op.call, args, Err(libc::EFAULT), started)),
            None => Progress::Vanished,
        };
    }
    let how = AddFd {
        cloexec: op.flags & libc::SOCK_CLOEXEC != 0,
        at: None,
    };
    let args = op.render(Some(&(addr.clone(), len)));
    match notif.answer_with_fd(newfd.as_fd(), how) {
        Ok(n) => {
            let mut r = rec(pid, op.call, args, Ok(n as i64), started);
            r.addr = SockAddr::parse(&addr);
            Progress::Done(r)
        }
        Err(_) => {
            stash_it(ctx, newfd, addr);
            Progress::Vanished
        }
    }
}

fn resume_send(
    ctx: &Ctx,
    notif: Notification,
    sock: OwnedFd,
    mut op: SendOp,
    started: Instant,
    hooks: &mut dyn Hooks,
) -> Progress {
    let keep_names = !hooks.ignores_send_name(sock.as_fd());
    let pid = notif.pid;
    let blocking = may_block(sock.as_fd(), op.flags);
    let flags = (op.flags | libc::MSG_DONTWAIT as u32 | libc::MSG_NOSIGNAL as u32) as i32;
    let mut err = None;
    // Chosen at the first message the kernel sends (not one a bridge takes),
    // and kept for the rest of this call.
    let mut actor = None;
    while op.done < op.msgs.len() {
        let m = &op.msgs[op.done];
        let data = &m.data[op.partial..];
        let name = m.name.as_deref().filter(|_| keep_names);
        let sent = match hooks.send_datagram(sock.as_fd(), name, data, &m.given_control) {
            Some(r) => r,
            None => send_one(ctx, &notif, &mut actor, sock.as_fd(), name, data, &m.control, flags),
        };
        match sent {
            Ok(n) => {
                op.partial += n;
                if op.partial >= m.data.len() || !op.stream {
                    op.sent_lens.push(op.partial);
                    op.done += 1;
                    op.partial = 0;
                } else if !blocking {
                    // A short stream write on a non-blocking socket is final.
                    op.sent_lens.push(op.partial);
                    op.done += 1;
                    op.partial = 0;
                    break;
                }
            }
            Err(e) => {
                err = Some(e);
                break;
            }
        }
        if op.call != NetCall::Sendmmsg && op.done > 0 {
            break;
        }
    }
    drop(actor);
    let progress_made = op.done > 0 || op.partial > 0;
    if err == Some(libc::EAGAIN) && blocking && (op.call != NetCall::Sendmmsg || op.done == 0) {
        return park(notif, sock, Op::Send(op), Interest::Write, started, true);
    }
    if op.partial > 0 {
        // Interrupted mid-message (an error after a partial stream write).
        op.sent_lens.push(op.partial);
        op.done += 1;
        op.partial = 0;
    }
    if err == Some(libc::EPIPE) && op.flags & libc::MSG_NOSIGNAL as u32 == 0 {
        // The kernel would have sent SIGPIPE to the caller, not to us.
        if let Ok(pidfd) = notif.pidfd() {
            let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::Pipe);
        }
    }
    let res: Res = match (op.call, err) {
        (NetCall::Sendmmsg, _) if op.done > 0 => {
            for (i, len) in op.sent_lens.iter().enumerate() {
                let at = op.vec_ptr + (i * MmsgHdr::SIZE) as u64 + MmsgHdr::LEN_OFFSET;
                let _ = notif.write_bytes(at, &(*len as u32).to_ne_bytes());
            }
            Ok(op.done as i64)
        }
        (_, Some(e)) if !progress_made => Err(e),
        _ => Ok(op.sent_lens.first().copied().unwrap_or(0) as i64),
    };
    let args = op.render();
    match answer(notif, res) {
        Some(()) => {
            let mut r = rec(pid, op.call, args, res, started);
            r.addr = op
                .msgs
                .first()
                .and_then(|m| m.name.as_deref())
                .and_then(SockAddr::parse);
            Progress::Done(r)
        }
        None => Progress::Vanished,
    }
}

/// Sends one message with the caller's power, choosing the actor on first use.
#[allow(clippy::too_many_arguments)]
fn send_one<'a>(
    ctx: &'a Ctx,
    notif: &'a Notification,
    actor: &mut Option<super::Actor<'a>>,
    sock: BorrowedFd<'_>,
    name: Option<&[u8]>,
    data: &[u8],
    control: &[u8],
    flags: i32,
) -> Result<usize, i32> {
    if actor.is_none() {
        *actor = Some(match name {
            Some(n) => ctx.actor_at(notif, n)?,
            None => ctx.actor(notif)?,
        });
    }
    let a = actor.as_mut().expect("set above");
    let cwd = match name {
        Some(n) => ctx.cwd_for(notif, n)?,
        None => None,
    };
    a.act()
        .sendmsg(sock, name, data, control, flags, cwd.as_ref().map(|c| c.as_fd()))
}

/// Writes one received message into the target; `Err` with the errno.
fn deliver(
    notif: &Notification,
    m: &InMsg,
    g: &mut GotMsg,
    cmsg_cloexec: bool,
) -> Result<(), joyride_notify::MemError> {
    // Data, scattered over the user's iovecs.
    let mut off = 0usize;
    let shown = g.data.len();
    for v in &m.iov {
        if off >= shown {
            break;
        }
        let take = (v.len as usize).min(shown - off);
        notif.write_bytes(v.base, &g.data[off..off + take])?;
        off += take;
    }
    if m.name_ptr != 0 {
        let user_len = match m.user_namelen {
            Some(l) => l,
            None => notif.read_u32(m.name_len_ptr)?,
        };
        if (user_len as i32) < 0 {
            // move_addr_to_user's EINVAL.
            return Err(joyride_notify::MemError::TooLong {
                len: user_len as u64,
                max: 0,
            });
        }
        g.user_namelen = user_len;
        let n = (user_len as usize).min(g.name.0.len());
        notif.write_many(&[(m.name_ptr, &g.name.0[..n]), (m.name_len_ptr, &g.name.1.to_ne_bytes())])?;
    } else if m.hdr_ptr.is_some() {
        notif.write_bytes(m.name_len_ptr, &0u32.to_ne_bytes())?;
    }
    if let Some(h) = m.hdr_ptr {
        // Install fds received with SCM_RIGHTS in the target. Messages
        // are rebuilt only then: they are laid out as the caller gets them
        // (truncated as put_cmsg does).
        let mut msgs = sys::parse_cmsgs(&g.control);
        if msgs
            .iter()
            .any(|(level, ty, _)| *level == libc::SOL_SOCKET && *ty == libc::SCM_RIGHTS)
        {
            for (level, ty, data) in msgs.iter_mut() {
                if *level == libc::SOL_SOCKET && *ty == libc::SCM_RIGHTS {
                    let mut out = Vec::with_capacity(data.len());
                    for ours in sys::own_fds(data) {
                        let how = AddFd {
                            cloexec: cmsg_cloexec,
                            at: None,
                        };
                        match notif.add_fd(ours.as_fd(), how) {
                            Ok(n) => out.extend_from_slice(&n.to_ne_bytes()),
                            Err(_) => return Err(joyride_notify::MemError::Gone),
                        }
                    }
                    *data = out;
                }
            }
            g.control = sys::build_cmsgs(&msgs);
        }
        let clen = g.control.len().min(m.raw.controllen as usize);
        notif.write_bytes(m.raw.control, &g.control[..clen])?;
        notif.write_bytes(h + RawMsgHdr::CONTROLLEN_OFFSET, &(clen as u64).to_ne_bytes())?;
        notif.write_bytes(h + RawMsgHdr::FLAGS_OFFSET, &g.flags.to_ne_bytes())?;
    }
    Ok(())
}

fn resume_recv(
    ctx: &mut Ctx,
    notif: Notification,
    sock: OwnedFd,
    mut op: RecvOp,
    started: Instant,
    hooks: &mut dyn Hooks,
) -> Progress {
    let pid = notif.pid;
    let blocking = may_block(sock.as_fd(), op.flags);
    let peek = op.flags & libc::MSG_PEEK as u32 != 0;
    // sock_recv_errqueue never blocks.
    let errqueue = op.flags & libc::MSG_ERRQUEUE as u32 != 0;
    let waitall = op.flags & libc::MSG_WAITALL as u32 != 0 && op.stream && blocking && !peek;
    let id = sys::file_id(sock.as_fd()).ok();
    let flags =
        ((op.flags & !(libc::MSG_WAITALL as u32)) | libc::MSG_DONTWAIT as u32 | libc::MSG_CMSG_CLOEXEC as u32) as i32;
    let mut err = None;
    // A stream bridge is the supervisor's own socketpair: no actor for it.
    let stream_bridge = hooks.ignores_send_name(sock.as_fd());
    let mut actor = None;
    while op.got.len() < op.msgs.len() {
        let m = &op.msgs[op.got.len()];
        let want = m.cap - op.accumulated.len();
        // Data kept for a vanished caller comes first.
        let stashed = match id {
            Some(id) if !peek => ctx.stash.take_received(id, want, op.stream),
            _ => None,
        };
        let got = match stashed {
            Some(d) => {
                let n = d.bytes.len();
                let mut bytes = d.bytes;
                let mut fl = 0;
                if bytes.len() > want {
                    bytes.truncate(want);
                    fl |= libc::MSG_TRUNC;
                }
                Ok(GotMsg {
                    user_namelen: 0,
                    n: if op.flags & libc::MSG_TRUNC as u32 != 0 {
                        n
                    } else {
                        bytes.len()
                    },
                    data: bytes,
                    name: d.name,
                    control: Vec::new(),
                    flags: fl,
                })
            }
            None => {
                let mut buf = vec![0u8; want];
                let control_cap = m
                    .hdr_ptr
                    .map(|_| (m.raw.controllen as usize).min(CMSG_MAX))
                    .unwrap_or(0);
                // A user-space datagram socket's source and control
                // messages come from its bridge's record of the datagram;
                // the bridge itself carries none.
                let head = hooks.datagram_head(sock.as_fd(), m.hdr_ptr.is_some());
                let received = if head.is_some() && errqueue {
                    // The stack's ICMP errors are not queued for the
                    // program: its error queue is empty (and the bridge's
                    // datagrams are not errors).
                    Err(libc::EAGAIN)
                } else if head.is_some() {
                    sys::recvmsg(sock.as_fd(), &mut buf, 0, flags).map_err(errno_of)
                } else if stream_bridge {
                    sys::recvmsg(sock.as_fd(), &mut buf, control_cap, flags).map_err(errno_of)
                } else {
                    // SCM_CREDENTIALS are shown in the receiver's user
                    // namespace: the kernel must see the caller receive.
                    if actor.is_none() {
                        // Only `acting` stays borrowed: the stash is used
                        // again on the next message.
                        let chosen = match ctx.caller_creds(&notif, false) {
                            Ok(c) => ctx.acting.actor(&notif, c),
                            Err(e) => Err(e),
                        };
                        match chosen {
                            Ok(a) => actor = Some(a),
                            Err(e) => {
                                err = Some(e);
                                break;
                            }
                        }
                    }
                    let a = actor.as_mut().expect("set above");
                    a.act().recvmsg(sock.as_fd(), &mut buf, control_cap, flags)
                };
                received.map(|mut r| {
                    buf.truncate(r.n.min(want));
                    // ___sys_recvmsg shows MSG_CMSG_CLOEXEC in msg_flags
                    // when it was passed: ours is not the caller's.
                    r.flags = (r.flags & !libc::MSG_CMSG_CLOEXEC) | (op.flags as i32 & libc::MSG_CMSG_CLOEXEC);
                    let Some(head) = head else {
                        return GotMsg {
                            user_namelen: 0,
                            n: r.n,
                            data: buf,
                            name: (r.name, r.namelen),
                            control: r.control,
                            flags: r.flags,
                        };
                    };
                    // No buffer at all counts as no room (put_cmsg).
                    let cap = if m.raw.control == 0 { 0 } else { control_cap };
                    let (control, cut) = super::cmsg::put_cmsgs(&head.control, cap);
                    let flags = (r.flags & !libc::MSG_CTRUNC) | if cut { libc::MSG_CTRUNC } else { 0 };
                    let len = head.name.len() as u32;
                    GotMsg {
                        user_namelen: 0,
                        n: r.n,
                        data: buf,
                        name: (head.name, len),
                        control,
                        flags,
                    }
                })
            }
        };
        match got {
            Ok(g) if waitall => {
                let eof = g.n == 0;
                op.accumulated.extend_from_slice(&g.data);
                if op.accumulated.len() < m.cap && !eof {
                    continue;
                }
                let data = std::mem::take(&mut op.accumulated);
                op.got.push(GotMsg {
                    user_namelen: 0,
                    n: data.len(),
                    data,
                    ..g
                });
            }
            Ok(g) => op.got.push(g),
            Err(e) => {
                err = Some(e);
                break;
            }
        }
        // recvmmsg: after the first message, take only what is there.
        if op.call != NetCall::Recvmmsg {
            break;
        }
    }
    drop(actor);
    if err == Some(libc::EAGAIN) && blocking && !errqueue && op.got.is_empty() {
        return park(notif, sock, Op::Recv(op), Interest::Read, started, false);
    }
    if !op.accumulated.is_empty() {
        // MSG_WAITALL cut short by an error: return what arrived.
        let data = std::mem::take(&mut op.accumulated);
        op.got.push(GotMsg {
            user_namelen: 0,
            n: data.len(),
            data,
            name: (Vec::new(), 0),
            control: Vec::new(),
            flags: 0,
        });
    }
    let cloexec = op.flags & libc::MSG_CMSG_CLOEXEC as u32 != 0;
    let mut delivered = Ok(());
    for i in 0..op.got.len() {
        let (m, g) = (&op.msgs[i], &mut op.got[i]);
        delivered = deliver(&notif, m, g, cloexec);
        if delivered.is_err() {
            break;
        }
        if op.call == NetCall::Recvmmsg {
            let at = op.vec_ptr + (i * MmsgHdr::SIZE) as u64 + MmsgHdr::LEN_OFFSET;
            delivered = notif.write_bytes(at, &(g.n as u32).to_ne_bytes());
        }
    }
    let res: Res = match (&delivered, err) {
        (Err(e), _) => Err(e.errno()),
        (Ok(()), _) if !op.got.is_empty() => Ok(if op.call == NetCall::Recvmmsg {
            op.got.len() as i64
        } else {
            op.got[0].n as i64
        }),
        (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => Ok(0),
    };
    let keep = |ctx: &mut Ctx, op: &mut RecvOp| {
        if peek {
            return;
        }
        let Some(id) = id else { return };
        for g in op.got.drain(..) {
            if let Ok(holder) = sock.try_clone() {
                let d = Datagram {
                    bytes: g.data,
                    name: g.name,
                };
                ctx.stash.put_received(id, holder, d);
            }
        }
    };
    if delivered.is_err() {
        // The bytes could not be written (bad buffer or the caller vanished):
        // keep them for the next receive rather than lose them.
        keep(ctx, &mut op);
        if delivered == Err(joyride_notify::MemError::Gone) {
            return Progress::Vanished;
        }
    }
    let args = op.render(&res);
    let addr = op.got.first().and_then(|g| SockAddr::parse(&g.name.0));
    match answer(notif, res) {
        Some(()) => {
            let mut r = rec(pid, op.call, args, res, started);
            r.addr = addr;
            Progress::Done(r)
        }
        None => {
            keep(ctx, &mut op);
            Progress::Vanished
        }
    }
}

/// Whether a parked call has done part of its work (bytes sent or gathered):
/// a signal then ends it with that partial result, not with `EINTR`, so it is
/// left to finish.
pub fn has_progress(p: &Parked) -> bool {
    match &p.op {
        Op::Send(s) => s.done > 0 || s.partial > 0,
        Op::Recv(r) => !r.accumulated.is_empty() || !r.got.is_empty(),
        Op::Connect { .. } | Op::Accept(_) => false,
    }
}

/// A parked call whose thread has a signal to handle: `EINTR` when the socket
/// has a timeout (the kernel does not restart those), otherwise the kernel's
/// restart-or-`EINTR` decision (see [`Notification::answer_restart`]).
pub fn interrupted(p: Parked) -> Progress {
    let pid = p.notif.pid;
    let (call, args) = match &p.op {
        Op::Connect { fd, addr, addrlen } => (
            NetCall::Connect,
            vec![fd.to_string(), show_addr(addr), addrlen.to_string()],
        ),
        Op::Accept(a) => (a.call, a.render(None)),
        Op::Send(s) => (s.call, s.render()),
        Op::Recv(r) => (r.call, r.render(&Err(libc::EINTR))),
    };
    let (res, answered) = if p.deadline.is_some() {
        (Err(libc::EINTR), p.notif.answer_errno(libc::EINTR))
    } else {
        (Err(joyride_notify::ERESTARTSYS), p.notif.answer_restart())
    };
    match answered {
        Ok(()) => Progress::Done(rec(pid, call, args, res, p.started)),
        Err(_) => Progress::Vanished,
    }
}

/// A parked call whose deadline passed: `EAGAIN` (`EINPROGRESS` for connect),
/// as the kernel answers when `SO_RCVTIMEO`/`SO_SNDTIMEO` expire.
pub fn timed_out(p: Parked) -> Progress {
    let pid = p.notif.pid;
    let (call, args, e) = match &p.op {
        Op::Connect { fd, addr, addrlen } => (
            NetCall::Connect,
            vec![fd.to_string(), show_addr(addr), addrlen.to_string()],
            libc::EINPROGRESS,
        ),
        Op::Accept(a) => (a.call, a.render(None), libc::EAGAIN),
        Op::Send(s) => (s.call, s.render(), libc::EAGAIN),
        Op::Recv(r) => (r.call, r.render(&Err(libc::EAGAIN)), libc::EAGAIN),
    };
    match answer(p.notif, Err(e)) {
        Some(()) => Progress::Done(rec(pid, call, args, Err(e), p.started)),
        None => Progress::Vanished,
    }
}
